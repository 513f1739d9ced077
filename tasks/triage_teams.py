"""A custom metric for tasks/triage_teams.yaml: is the ticket routed to the right *team*?

Brightdesk's five queues are worked by three teams: accounts (billing, account), engineering (technical)
and customer success (feature_request, general). A ticket in the wrong queue of the right team is
handed over within minutes; a ticket sent to another team waits a day. So the question for the switch is
not "same queue as Sonnet" but "same team", with a small penalty for the in-team hand-off.

evalkit calls ``team_routing(sample, answer, truth)`` for every valid answer: ``answer`` and ``truth`` are
queue names (the truth is the gold label, or the reference's answer without gold), ``sample`` the ticket
with its dataset columns. It returns a score in [0, 1]; the task's threshold (0.5) makes "right team" count
as right in the decision's paired test.
"""

from __future__ import annotations

from typing import Any

TEAM = {"billing": "accounts", "account": "accounts", "technical": "engineering",
        "feature_request": "customer success", "general": "customer success"}


def team_routing(sample: Any, answer: str, truth: str) -> float:
    """1 for the right queue, 0.75 for another queue of the right team (1 when the data marks the ticket
    ambiguous: either queue is defensible), 0 for the wrong team."""
    if answer == truth:
        return 1.0
    if TEAM.get(answer) != TEAM.get(truth):
        return 0.0
    return 1.0 if sample.fields.get("ambiguous") else 0.75
