"""evalkit's offline simulator of the Anthropic API (see :mod:`evalkit.sim.app`).

Answers are computed by small local models (:mod:`evalkit.sim.brain`); they are not Claude's. Anything
that ran on the simulator is marked SIMULATED in every report.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.config import Settings


def simulator_state_dir(settings: Settings) -> Path:
    """Where the in-process simulator keeps its billing ledger (beside the response cache)."""
    return settings.cache_dir.parent / "simulator"


class Simulator:
    """An in-process simulator the SDK reaches through an ASGI transport (no sockets)."""

    def __init__(self, settings: Settings, state_dir: Path | None = None) -> None:
        from evalkit.sim.app import SimulatorState, create_app

        self.state = SimulatorState(settings.simulator, root=settings.root,
                                    state_dir=(state_dir if state_dir is not None
                                               else simulator_state_dir(settings)))
        self.app = create_app(self.state)

    @property
    def endpoint(self) -> str:
        return f"simulator:{self.state.fingerprint()}"
