"""``evalkit sim serve``: the simulator on a real socket, for the SDK or any HTTP client."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from evalkit.config import Settings
from evalkit.errors import UsageError
from evalkit.sim.app import SimulatorState, create_app

#: uvicorn's own exit code when it cannot start, which is also evalkit's INCONCLUSIVE; never passed on.
_UVICORN_STARTUP_FAILURE = 3


def _cannot_listen(host: str, port: int, why: str) -> UsageError:
    return UsageError(f"the simulator cannot listen on {host}:{port}: {why}",
                      hint="stop whatever listens there, or pick another port with --port")


def check_port(host: str, port: int) -> None:
    """Raise a :class:`UsageError` (exit 2) when ``host:port`` cannot be bound, e.g. it is in use.

    Checked before the models are trained, so a busy port fails in a moment, not after the warm-up.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise _cannot_listen(host, port, f"unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            why = "the port is already in use" if exc.errno == errno.EADDRINUSE else str(exc.strerror)
            raise _cannot_listen(host, port, why) from None


def serve(settings: Settings, *, host: str, port: int, state_dir: Path) -> None:
    import uvicorn

    check_port(host, port)
    state = SimulatorState(settings.simulator, root=settings.root, state_dir=state_dir)
    state.warm_up()  # train the simulated models before accepting traffic, not on the first request
    try:
        uvicorn.run(create_app(state), host=host, port=port, log_level="warning")
    except SystemExit as done:  # taken during the warm-up: uvicorn logged why and exits 3
        if done.code == _UVICORN_STARTUP_FAILURE:
            raise _cannot_listen(host, port, "the server did not start (see the line above)") from None
        raise
