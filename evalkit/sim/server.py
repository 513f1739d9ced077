"""``evalkit sim serve``: the simulator on a real socket, for the SDK or any HTTP client."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

from evalkit.config import Settings
from evalkit.errors import PortInUseError, UsageError
from evalkit.sim.app import SimulatorState, create_app


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), or a clear error when the port is taken.

    Bound before the simulated models are trained: nobody can take the port in between, and a client
    that connects early is refused until the server listens (then answered at once)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use by another process",
                                 hint="pick a free one with --port, or stop what is listening there "
                                      f"(e.g. `ss -ltnp 'sport = :{port}'` shows it)") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(settings: Settings, *, host: str, port: int, state_dir: Path,
          overrides: dict[str, Any] | None = None) -> None:
    """Serve until interrupted. ``overrides`` replace ``[simulator]`` keys (the command-line flags)."""
    import uvicorn

    simulator = settings.simulator.with_overrides(overrides or {})
    sock = bind(host, port)
    try:
        state = SimulatorState(simulator, root=settings.root, state_dir=state_dir)
        state.warm_up()  # train the simulated models before accepting traffic, not on the first request
        server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning"))
        server.run(sockets=[sock])
    finally:
        sock.close()
