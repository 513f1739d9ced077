"""Shared helpers for the benchmarks: throwaway projects and a served simulator on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_project(root: Path, *, settings: dict[str, str] | None = None, rows: int | None = None) -> Path:
    """A copy of the demo project; ``settings`` replaces `key = value` lines of evalkit.toml; ``rows``
    synthesises a larger test split by repeating the demo messages with new ids."""
    (root / "tasks").mkdir(parents=True)
    (root / "datasets").mkdir()
    for path in (REPO / "datasets").glob("*.*"):
        shutil.copy(path, root / "datasets" / path.name)
    shutil.copy(REPO / "tasks" / "triage.yaml", root / "tasks" / "triage.yaml")
    text = (REPO / "evalkit.toml").read_text()
    for key, value in (settings or {}).items():
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if line.split("=")[0].strip() == key:
                lines[index] = f"{key} = {value}"
        text = "\n".join(lines) + "\n"
    (root / "evalkit.toml").write_text(text)
    if rows:
        source = [json.loads(line) for line in (REPO / "datasets" / "triage.jsonl").read_text().splitlines()]
        train = [row for row in source if row["split"] == "train"]
        test = [row for row in source if row["split"] == "test"]
        with (root / "datasets" / "triage.jsonl").open("w") as handle:
            for row in train:
                handle.write(json.dumps(row) + "\n")
            for index in range(rows):
                row = dict(test[index % len(test)])
                row["id"] = f"x{index:06d}"
                row["text"] = f"{row['text']} (ref {index})"
                handle.write(json.dumps(row) + "\n")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_simulator(project: Path, state: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "evalkit", "sim", "serve", "--port", str(port),
                               "--state-dir", str(state)], cwd=project, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "bench"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def evalkit(project: Path, *args: str,
            env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"evalkit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - started, result


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
