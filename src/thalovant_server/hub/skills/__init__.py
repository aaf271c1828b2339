"""Built-in skills of the embedded agent, and the small API third-party skills use."""

from thalovant_server.hub.skills.base import (
    HubView,
    Request,
    Skill,
    SkillReply,
    action,
    code,
    intent,
    subscribe,
)

__all__ = ["HubView", "Request", "Skill", "SkillReply", "action", "code", "intent", "subscribe"]
