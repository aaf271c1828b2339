"""Approvals: ``/approve <id>`` and ``/reject <id>`` actions, and scanned approval codes.

An action names the item; a scanned code of kind ``invoice`` (or ``order``, ``ticket``,
``approval``) is acknowledged with a button that approves it.
"""

from __future__ import annotations

from typing import Any

from thalovant_server.hub.skills.base import Request, Skill, SkillReply, action, code, intent

__all__ = ["ApprovalsSkill", "item_id"]

_MAX_ID = 120
_MAX_KEPT = 50


def item_id(payload: str, prefix: str) -> str:
    """The id after the action prefix (``/approve invoice-42`` gives ``invoice-42``)."""
    rest = payload.strip()[len(prefix) :].strip()
    return " ".join(rest.split())[:_MAX_ID]


def _record(state: dict[str, Any], item: str, status: str) -> None:
    decisions = state.get("decisions")
    if not isinstance(decisions, dict):
        decisions = {}
    decisions.pop(item, None)
    decisions[item] = status
    while len(decisions) > _MAX_KEPT:
        decisions.pop(next(iter(decisions)))
    state["decisions"] = decisions


class ApprovalsSkill(Skill):
    """Approves or rejects items named by actions and acknowledges scanned codes."""

    skill_id = "approvals"
    title = "Approvals"
    capability = "approval"
    description = "Approves invoices and other items from actions and scanned codes."

    @action("/approve")
    def approve(self, request: Request) -> SkillReply:
        return self._decide(request, "/approve", "approved")

    @action("/reject")
    def reject(self, request: Request) -> SkillReply:
        return self._decide(request, "/reject", "rejected")

    def _decide(self, request: Request, prefix: str, status: str) -> SkillReply:
        item = item_id(request.utterance, prefix)
        if not item:
            return SkillReply.say(f"Which item? Send {prefix} followed by its id.")
        _record(request.state, item, status)
        return SkillReply.say(
            f"{status.capitalize()} {item}.",
            display={"table": {"columns": ["id", "status"], "rows": [[item, status]]}},
        )

    @code("invoice")
    def invoice(self, request: Request) -> SkillReply:
        return self._scanned(request, "invoice")

    @code("order")
    def order(self, request: Request) -> SkillReply:
        return self._scanned(request, "order")

    @code("ticket")
    def ticket(self, request: Request) -> SkillReply:
        return self._scanned(request, "ticket")

    @code("approval")
    def approval(self, request: Request) -> SkillReply:
        return self._scanned(request, "approval")

    def _scanned(self, request: Request, kind: str) -> SkillReply:
        value = request.input.get("value")
        item = " ".join(str(value if value is not None else request.utterance).split())[:_MAX_ID]
        if not item:
            return SkillReply.say(f"The scanned {kind} code was empty.")
        _record(request.state, item, "scanned")
        return SkillReply.say(
            f"Scanned {kind} {item}. Send /approve {item} to approve it.",
            display={
                "buttons": [
                    {"title": f"Approve {item}", "payload": f"/approve {item}"},
                    {"title": f"Reject {item}", "payload": f"/reject {item}"},
                ]
            },
        )

    @intent("pending", examples=("what did i approve", "list approvals", "show approvals", "approvals"))
    def listing(self, request: Request) -> SkillReply:
        decisions = request.state.get("decisions")
        if not isinstance(decisions, dict) or not decisions:
            return SkillReply.say("Nothing was approved or scanned in this conversation yet.")
        rows = [[str(k), str(v)] for k, v in decisions.items()]
        summary = ", ".join(f"{k} {v}" for k, v in rows)
        return SkillReply.say(f"So far: {summary}.", display={"table": {"columns": ["id", "status"], "rows": rows}})
