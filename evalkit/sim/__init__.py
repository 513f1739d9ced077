"""evalkit's offline simulator of the Anthropic API (see :mod:`evalkit.sim.app`).

Answers are computed by small local models (:mod:`evalkit.sim.brain`); they are not Claude's. Anything
that ran on the simulator is marked SIMULATED in every report.

This module stays light (no web framework, no models): a run whose every answer is cached needs the
simulator's identity (its fingerprint is part of every cache key) but never its app.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from evalkit._hashing import digest
from evalkit.config import Settings, SimulatorSettings
from evalkit.errors import ConfigError

SIMULATOR_VERSION = "3"  # bump when answers or usage change: it partitions the response cache


def simulator_state_dir(settings: Settings) -> Path:
    """Where the in-process simulator keeps its billing ledger (beside the response cache)."""
    return settings.cache_dir.parent / "simulator"


def _corpus_path(corpus: Any, root: Path) -> Path:
    path = Path(corpus.path)
    return path if path.is_absolute() else root / path


def check_corpora(settings: SimulatorSettings, root: Path) -> None:
    """Every ``[[simulator.corpora]]`` file exists (else the simulator could not answer)."""
    for corpus in settings.corpora:
        path = _corpus_path(corpus, root)
        if not path.is_file():
            raise ConfigError(f"simulator corpus not found: {path}",
                              hint="fix or remove this [[simulator.corpora]] entry in evalkit.toml")


def simulator_fingerprint(settings: SimulatorSettings, root: Path) -> str:
    """Identity of a simulator's behaviour: same fingerprint, same answers (for cache keys)."""
    corpora = []
    for corpus in settings.corpora:
        path = _corpus_path(corpus, root)
        data = path.read_bytes() if path.exists() else b""
        corpora.append(hashlib.sha256(data).hexdigest())
    dumped = settings.model_dump(exclude={"latency_ms", "rate_limits", "api_key"})
    return digest({"version": SIMULATOR_VERSION, "settings": dumped, "corpora": corpora})[:16]


class Simulator:
    """An in-process simulator the SDK reaches through an ASGI transport (no sockets).

    Its state and app (the web framework, the batch store, which reads every stored batch at start-up)
    are built on first use of :attr:`state` or :attr:`app`, i.e. when the first request must be sent:
    a run answered from the cache only needs :attr:`endpoint`. The corpora are checked at once.
    """

    def __init__(self, settings: Settings, state_dir: Path | None = None) -> None:
        check_corpora(settings.simulator, settings.root)
        self._settings = settings.simulator
        self._root = settings.root
        self._state_dir = state_dir if state_dir is not None else simulator_state_dir(settings)
        self._state: Any = None
        self._app: Any = None

    @property
    def built(self) -> bool:
        """Whether the state and app exist yet (False until a request needed them)."""
        return self._state is not None

    @property
    def state(self) -> Any:
        if self._state is None:
            from evalkit.sim.app import SimulatorState, create_app  # noqa: PLC0415 - starlette on first use

            state = SimulatorState(self._settings, root=self._root, state_dir=self._state_dir)
            self._app = create_app(state)
            self._state = state
        return self._state

    @property
    def app(self) -> Any:
        self.state  # noqa: B018 - builds the state and app
        return self._app

    @property
    def endpoint(self) -> str:
        return f"simulator:{simulator_fingerprint(self._settings, self._root)}"
