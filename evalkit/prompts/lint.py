"""Cache-busting lint: finds template constructs that stop the prompt cache from paying.

The cached prefix is the rendered system prompt; it must be byte-identical across requests (and runs).
This walks the jinja2 syntax trees of ``prompt.system`` and ``prompt.user`` and reports, with the task
file's line:

* per-sample or unknown variables inside the system prompt (it would differ per request, or fail);
* volatile values in the system prompt (``now``, dates, ids, ``random``): a new cache entry every time;
* long static text in ``prompt.user`` after per-sample content, re-sent uncached with every request;
* a prefix too short for a model's minimum cacheable length (informational).
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit._typed import Typed
from evalkit.errors import SpecIssue, TemplateError
from evalkit.schema_rules import schema_violations
from evalkit.spec import RolePrompt, TaskSpec

VOLATILE_NAMES = re.compile(
    r"^(now|today|date|time|datetime|timestamp|current_(date|time|datetime)|random\w*|uuid\w*|"
    r"run_id|request_id|nonce|\w*_(at|date|time|timestamp))$"
)
VOLATILE_FILTERS = frozenset({"random", "shuffle"})
STATIC_TAIL_CHARS = 300  # about 75 tokens: worth caching


class Finding(Typed):
    """One thing in a task's templates that would stop prompt caching from paying, located."""

    severity: str  # "error" | "warning" | "info"
    where: str  # file:line
    key: str
    message: str
    fix: str

    def render(self) -> str:
        return f"{self.where}: {self.severity}: {self.key}: {self.message}\n    fix: {self.fix}"


def _finding(severity: str, where: str, key: str, message: str, fix: str) -> Finding:
    return Finding(severity=severity, where=where, key=key, message=message, fix=fix)


def _where(task: TaskSpec, key: str, template_line: int | None) -> str:
    source = task.source
    if source is None:
        return "<task>"
    start = source.first_content_line(key)
    if start is None or template_line is None:
        return f"{source.path}:{source.line_of(key) or '?'}"
    return f"{source.path}:{start + template_line - 1}"


def _names_with_lines(tree: nodes.Template) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
    return lines


def lint_templates(task: TaskSpec) -> list[Finding]:
    """Cache-busters in every prompt the task sends: its own, and each candidate configuration's variant."""
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for index in range(len(task.models.configurations())):
        configuration = task.configuration(index)
        for role in ("reference", "candidate"):
            prompt = configuration.prompt_for(role)
            if (prompt.system_key, prompt.user_key) in seen:
                continue
            seen.add((prompt.system_key, prompt.user_key))
            findings.extend(_lint_prompt(task, prompt))
    return findings


def _lint_prompt(task: TaskSpec, prompt: RolePrompt) -> list[Finding]:
    env = ImmutableSandboxedEnvironment()
    findings: list[Finding] = []
    system_key, user_key = prompt.system_key, prompt.user_key
    static = {"labels", "label_descriptions", "output_schema", *prompt.variables, *prompt.include}
    try:
        system_tree = env.parse(prompt.system)
        user_tree = env.parse(prompt.user)
    except TemplateSyntaxError as exc:
        key = system_key if exc.source == prompt.system else user_key
        return [_finding("error", _where(task, key, exc.lineno), key, f"template syntax error: {exc.message}",
                        "fix the jinja2 syntax")]

    undeclared = meta.find_undeclared_variables(system_tree)
    lines = _names_with_lines(system_tree)
    for name in sorted(undeclared, key=lambda n: lines.get(n, 0)):
        where = _where(task, system_key, lines.get(name))
        if VOLATILE_NAMES.match(name):
            findings.append(_finding(
                "warning", where, system_key,
                f"volatile value '{{{{ {name} }}}}' in the cached system prompt: each new value writes a new "
                "cache entry (at 1.25–2× the input price) instead of reading one (0.1×)",
                f"drop it, or move {{{{ {name} }}}} to the end of prompt.user"))
        elif name not in static:
            findings.append(_finding(
                "error", where, system_key,
                f"'{{{{ {name} }}}}' is not a static variable: the system prompt is the cached prefix "
                "shared by every request, so it cannot hold per-sample values",
                f"move {{{{ {name} }}}} to prompt.user, or define it under prompt.variables if it is static"))
    for node in system_tree.find_all(nodes.Filter):
        if node.name in VOLATILE_FILTERS:
            findings.append(_finding(
                "warning", _where(task, system_key, node.lineno), system_key,
                f"the '{node.name}' filter makes the cached system prompt differ between renders",
                f"render a fixed order or choice in {system_key}"))

    # In prompt.user, static text after per-sample content is re-sent, uncached, with every request.
    seen_dynamic = False
    for output in user_tree.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                text = child.data.strip()
                if seen_dynamic and len(text) >= STATIC_TAIL_CHARS:
                    findings.append(_finding(
                        "warning", _where(task, user_key, child.lineno), user_key,
                        f"{len(text)} characters of static text come after per-sample content: they are "
                        "sent uncached with every request",
                        "move these instructions into prompt.system, before the per-sample message"))
            else:
                seen_dynamic = True
    return findings


def lint_task(task: TaskSpec, *, mode: str = "batch") -> list[Finding]:
    """Every finding for a task: the output schema, cache-busters, and whether the prefix can be cached."""
    findings = lint_schema(task) + lint_templates(task)
    if any(f.severity == "error" for f in findings):
        return findings
    from evalkit.prompts.prompt_caching import plan_caching  # noqa: PLC0415
    from evalkit.prompts.render import PromptRenderer, output_schema  # noqa: PLC0415

    schema = output_schema(task.output) if task.output.structured else None
    seen_models: set[tuple[str, str]] = set()
    for index in range(len(task.models.configurations())):
        configuration = task.configuration(index)
        try:
            systems = {role: PromptRenderer(configuration, role).system
                       for role in ("candidate", "reference")}
        except TemplateError as exc:
            return [*findings, _finding("error", _where(task, "prompt.system", None), "prompt.system",
                                        exc.message, exc.hint or "fix the template")]
        for role, plan in plan_caching(configuration, systems, schema, mode=mode).items():
            key = configuration.prompt_for(role).system_key
            if (plan.model, key) in seen_models or plan.enabled or task.prompt.cache == "off":
                continue
            seen_models.add((plan.model, key))
            findings.append(_finding("info", _where(task, key, None), key, f"{plan.model}: {plan.reason}",
                                     "nothing to fix if the prompt is meant to be short"))
    return findings


def schema_issues(task: TaskSpec) -> list[SpecIssue]:
    """The output schema against the structured-outputs subset: every part the API would refuse (HTTP 400
    — in batch mode only after the batch has run), located in the task file, with the fix."""
    if not task.output.structured or task.output.kind == "text":
        return []
    from evalkit.prompts.render import output_schema  # noqa: PLC0415 - render imports this module's peers

    source = "output.json_schema" if task.output.kind == "extraction" else "output"
    issues = []
    for violation in schema_violations(output_schema(task.output)):
        key = f"{source}.{violation.path}" if violation.path and source == "output.json_schema" else source
        issues.append(SpecIssue(path=key, message="structured outputs reject this schema: "
                                                  f"{violation.message}",
                                line=task.source.line_of(key) if task.source else None, hint=violation.fix))
    return issues


def lint_schema(task: TaskSpec) -> list[Finding]:
    """:func:`schema_issues` as lint findings."""
    where = str(task.task_file or "<task>")
    return [_finding("error", f"{where}:{issue.line}" if issue.line else where, issue.path, issue.message,
                     issue.hint or "") for issue in schema_issues(task)]
