"""``evalkit sim serve``: the simulator on a real socket, for the SDK or any HTTP client."""

from __future__ import annotations

from pathlib import Path

from evalkit.config import Settings
from evalkit.sim.app import SimulatorState, create_app


def serve(settings: Settings, *, host: str, port: int, state_dir: Path) -> None:
    import uvicorn

    state = SimulatorState(settings.simulator, root=settings.root, state_dir=state_dir)
    state.warm_up()  # train the simulated models before accepting traffic, not on the first request
    uvicorn.run(create_app(state), host=host, port=port, log_level="warning")
