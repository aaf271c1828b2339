"""The current time and date, in the caller's time zone when the request's location has one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from thalovant_server.hub.skills.base import Request, Skill, SkillReply, intent

__all__ = ["ClockSkill", "request_zone"]


def request_zone(context: Mapping[str, Any]) -> tuple[tzinfo, str]:
    """The zone of ``context.location.timezone.code`` (or ``context.timezone``), else UTC."""
    code: Any = None
    location = context.get("location")
    if isinstance(location, dict):
        zone = location.get("timezone")
        code = zone.get("code") if isinstance(zone, dict) else zone
    if not isinstance(code, str):
        code = context.get("timezone")
    if isinstance(code, str) and 0 < len(code) <= 64:
        try:
            return ZoneInfo(code), code
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC, "UTC"


class ClockSkill(Skill):
    """Tells the time and the date."""

    skill_id = "clock"
    title = "Clock"
    capability = "time and date"
    description = "Tells the current time and date."

    @intent(
        "time",
        examples=("what time is it", "what is the time", "tell me the time", "current time", "time"),
    )
    def time(self, request: Request) -> SkillReply:
        zone, name = request_zone(request.context)
        now = datetime.now(zone)
        return SkillReply.say(f"It is {now:%H:%M} ({name}).", stay_active=False)

    @intent(
        "date",
        examples=(
            "what is the date",
            "what is today s date",
            "what day is it",
            "what is the date today",
            "today s date",
            "date",
        ),
    )
    def date(self, request: Request) -> SkillReply:
        zone, _ = request_zone(request.context)
        now = datetime.now(zone)
        return SkillReply.say(f"Today is {now:%A}, {now.day} {now:%B %Y}.", stay_active=False)
