"""The conformance suite's targets: the simulator (``evalkit sim serve`` on a free port) and, when
``ANTHROPIC_API_KEY`` is set and ``EVALKIT_LIVE=1``, the real Anthropic API. Every check runs against
both, so one command shows where they differ:

    EVALKIT_LIVE=1 ANTHROPIC_API_KEY=sk-ant-… python -m pytest tests/conformance -n 0 -ra

Without a key the live half is skipped and says so (``SKIPPED … live API not run``). The live half
spends a few cents: small requests to claude-haiku-5-5 (rejected requests are not billed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import REPO, serve_simulator

# Read at import, before tests/conftest.py's autouse fixture removes the key from every test's environment.
LIVE_KEY = os.environ.get("ANTHROPIC_API_KEY", "").strip()
LIVE = bool(LIVE_KEY) and os.environ.get("EVALKIT_LIVE") == "1"
LIVE_SKIP = ("live API not run: set ANTHROPIC_API_KEY and EVALKIT_LIVE=1 to run this check against the real "
             "Anthropic API as well")
LIVE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class Target:
    name: str  # "simulator" | "api"
    base_url: str
    api_key: str

    @property
    def simulated(self) -> bool:
        return self.name == "simulator"


@pytest.fixture(scope="session")
def served_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``evalkit sim serve`` for a copy of the project, on a free port, for the whole session."""
    root = tmp_path_factory.mktemp("conformance") / "project"
    (root / "datasets").mkdir(parents=True)
    shutil.copy(REPO / "evalkit.toml", root / "evalkit.toml")
    for path in (REPO / "datasets").iterdir():
        if path.is_file():
            shutil.copy(path, root / "datasets" / path.name)
    server, port = serve_simulator(root, root / "state", root / "serve.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(params=["simulator", "api"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "api":
        if not LIVE:
            pytest.skip(LIVE_SKIP)
        return Target("api", LIVE_URL, LIVE_KEY)
    return Target("simulator", request.getfixturevalue("served_simulator"), "conformance-any-key")


def pytest_report_header(config: pytest.Config) -> str:
    return ("conformance: simulator and the real Anthropic API" if LIVE
            else "conformance: simulator only (" + LIVE_SKIP + ")")
