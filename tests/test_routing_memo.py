"""The calibration report is remembered beside the response cache, so re-runs do not compute it again;
routing's folds are scikit-learn's KFold folds without scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import KFold

from evalkit.routing import calibration, memo
from evalkit.routing.thresholds import kfold_split

# A child process: compute the report for fixed inputs with a memo folder, print whether it was computed
# (not read), whether scikit-learn was imported and the report.
CHILD = """
import json, sys
import numpy as np
from evalkit.routing import calibration
from evalkit.routing.calibration import calibration_report
computed = []
real = calibration._report
calibration._report = lambda *a, **k: computed.append(1) or real(*a, **k)
rng = np.random.default_rng(int(sys.argv[2]))
y = (rng.random(300) < 0.8).astype(int)
p = np.round(np.clip(0.6 + 0.35 * y + rng.normal(0, 0.1, 300), 0, 1), 2)
p[:7] = np.nan
report = calibration_report(y, p, seed=int(sys.argv[3]), memo_dir=__import__("pathlib").Path(sys.argv[1]))
print(json.dumps({"computed": bool(computed), "sklearn": "sklearn" in sys.modules,
                  "scipy.stats": "scipy.stats" in sys.modules, "report": report}))
"""


def _child(folder: Path, data_seed: int = 1, seed: int = 0) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(data_seed), str(seed)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def _direct(data_seed: int = 1, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(data_seed)
    y = (rng.random(300) < 0.8).astype(int)
    p = np.round(np.clip(0.6 + 0.35 * y + rng.normal(0, 0.1, 300), 0, 1), 2)
    p[:7] = np.nan
    return calibration.calibration_report(y, p, seed=seed)


def test_a_second_computation_is_read_and_gives_the_same_report(tmp_path: Path) -> None:
    first = _child(tmp_path)
    assert first["computed"] is True and first["sklearn"] is False  # fitted without scikit-learn (fits.py)
    assert len(list(tmp_path.glob("calibration-report-*.json"))) == 1
    second = _child(tmp_path)
    assert second["computed"] is False and second["scipy.stats"] is False
    assert second["report"] == first["report"] == json.loads(json.dumps(_direct()))
    # In process too: the remembered object equals the computed one, float for float.
    remembered = calibration.calibration_report(*_inputs(), memo_dir=tmp_path)
    assert remembered == _direct() and json.dumps(remembered) == json.dumps(_direct())


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.8).astype(int)
    p = np.round(np.clip(0.6 + 0.35 * y + rng.normal(0, 0.1, 300), 0, 1), 2)
    p[:7] = np.nan
    return y, p


def test_changed_inputs_or_seed_are_recomputed(tmp_path: Path) -> None:
    _child(tmp_path)
    other_data = _child(tmp_path, data_seed=2)
    assert other_data["computed"] is True and other_data["report"] == json.loads(json.dumps(_direct(2)))
    other_seed = _child(tmp_path, seed=3)
    assert other_seed["computed"] is True and other_seed["report"] == json.loads(json.dumps(_direct(1, 3)))
    assert len(list(tmp_path.glob("calibration-report-*.json"))) == 3


def test_other_library_versions_are_another_key(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = {"y": np.arange(3.0), "folds": 5}
    before = memo.digest("calibration-report", calibration.__name__, inputs)
    versions = dict(memo._versions())
    monkeypatch.setattr(memo, "_versions", lambda: {**versions, "numpy": "0.0.1"})
    assert memo.digest("calibration-report", calibration.__name__, inputs) != before
    monkeypatch.undo()
    changed = {**inputs, "y": np.arange(3.0) + 1}
    assert memo.digest("calibration-report", calibration.__name__, changed) != before
    assert memo.digest("calibration-report", calibration.__name__, {**inputs, "folds": 4}) != before


def test_a_corrupt_or_foreign_entry_is_recomputed_not_fatal(tmp_path: Path) -> None:
    y, p = _inputs()
    calibration.calibration_report(y, p, memo_dir=tmp_path)
    (entry,) = tmp_path.glob("calibration-report-*.json")
    for broken in ("{not json", json.dumps({"key": "someone else's", "value": {}}), "\udcff"):
        entry.write_text(broken, errors="surrogateescape")
        assert calibration.calibration_report(y, p, memo_dir=tmp_path) == _direct()
        assert json.loads(entry.read_text())["value"] == json.loads(json.dumps(_direct()))


def test_an_unwritable_folder_only_costs_the_recomputation(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    y, p = _inputs()
    assert calibration.calibration_report(y, p, memo_dir=blocked / "derived") == _direct()


@pytest.mark.parametrize("n", [20, 21, 23, 24, 99, 468, 500])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_kfold_split_is_sklearns_kfold(n: int, seed: int) -> None:
    ours = list(kfold_split(n, 5, seed))
    theirs = list(KFold(5, shuffle=True, random_state=seed).split(np.zeros(n)))
    assert len(ours) == len(theirs) == 5
    for (train, test), (train_sk, test_sk) in zip(ours, theirs, strict=True):
        assert np.array_equal(train, train_sk) and np.array_equal(test, test_sk)
        assert train.dtype == train_sk.dtype and test.dtype == test_sk.dtype
    with pytest.raises(ValueError):
        list(kfold_split(3, 5, 0))
