"""A real PostgreSQL server for the shared-store tests (never a mock): Debian's packages, started by
initdb into a temporary folder, listening on a Unix socket in that folder and on a free TCP port of
127.0.0.1 (password authentication there, so a test can show a password never leaks into a message).

PostgreSQL refuses to run as root: as root the server runs as an unprivileged user (``evalkit-pg``,
created when missing, else ``nobody``). ``.ci/run`` installs the ``postgresql`` package when no initdb is
found; initdb is not on PATH in Debian (``/usr/lib/postgresql/<version>/bin``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "s3cret-Pw-4-evalkit"
USER = "evalkit"


def find_bin(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """Who runs the server: None (this user) unless root."""
    if os.getuid() != 0:
        return None
    try:
        pwd.getpwnam("evalkit-pg")
        return "evalkit-pg"
    except KeyError:
        pass
    done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           "evalkit-pg"], capture_output=True, text=True)
    return "evalkit-pg" if done.returncode == 0 else "nobody"


@dataclass
class PostgresServer:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    prefix: list[str]  # runuser … when the server runs as another user
    pg_ctl: Path

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD) -> str:
        """A TCP URL with the password in it (as a team would write it in EVALKIT_STORE)."""
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def new_database(self) -> str:
        """A fresh, empty database: its TCP URL (with the password)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.socket_url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown through pg_ctl (signals to runuser need not reach the server itself)."""
        if self.process.poll() is None:
            subprocess.run([*self.prefix, str(self.pg_ctl), "stop", "-D", str(self.folder / "data"), "-m",
                            "fast", "-w", "-t", "30"], capture_output=True)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PostgresServer:
    initdb, postgres, pg_ctl = find_bin("initdb"), find_bin("postgres"), find_bin("pg_ctl")
    if initdb is None or postgres is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on "
                           "PATH): apt-get install postgresql (`.ci/run` does it)")
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="evalkit-pg-"))
    data, sockets = folder / "data", folder / "socket"
    data.mkdir()
    sockets.mkdir()
    (folder / "pw").write_text(PASSWORD + "\n")
    prefix: list[str] = []
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, data, sockets, folder / "pw"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o755)
        prefix = ["runuser", "-u", user, "--"]
    done = subprocess.run([*prefix, str(initdb), "-D", str(data), "-U", USER, "--pwfile", str(folder / "pw"),
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
                           "--locale=C.UTF-8"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
    port = _free_port()
    with open(folder / "server.log", "wb") as log:  # the server keeps its own descriptor
        process = subprocess.Popen([*prefix, str(postgres), "-D", str(data), "-k", str(sockets), "-p",
                                    str(port), "-h", "127.0.0.1", "-c", "fsync=off", "-c",
                                    "max_connections=200", "-c", "full_page_writes=off"],
                                   stdout=log, stderr=subprocess.STDOUT)
    server = PostgresServer(folder=folder, port=port, process=process, prefix=prefix, pg_ctl=pg_ctl)
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(server.socket_url(), connect_timeout=2):
                break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                text = (folder / "server.log").read_text(errors="replace")
                server.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{text}") from None
            time.sleep(0.1)
    return server
