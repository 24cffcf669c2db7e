"""Who may do what in the support console: pure rules over plain values (no I/O).

Rules enforced here:
- three roles, each allowed everything the one before is: `viewer` reads every page and acts on
  nothing; `agent` also takes every action, with an adjustment's size (credits added or removed)
  at most the configured agent limit; `admin` also adjusts any amount the ledger allows;
- a person's role comes from the configured lists, the highest that names them (their email, or
  `domain:example.com` for everyone of a domain), matched without regard to case; someone named
  by no list has no role and sees nothing;
- an unknown action is refused to everyone (a new action must be given its rule here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

VIEWER, AGENT, ADMIN = "viewer", "agent", "admin"
ROLES = (VIEWER, AGENT, ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES)}

ADJUST = "adjust"
REFUND = "refund"
RELEASE_HOLD = "release_hold"
AUTO_TOPUP = "auto_topup"
REPLAY_EVENT = "replay_event"
REPLAY_MESSAGE = "replay_message"
DISCARD_MESSAGE = "discard_message"
DISCARD_EVENT = "discard_event"
# Every action and the least role that may take it.
ACTIONS = {
    ADJUST: AGENT,
    REFUND: AGENT,
    RELEASE_HOLD: AGENT,
    AUTO_TOPUP: AGENT,
    REPLAY_EVENT: AGENT,
    REPLAY_MESSAGE: AGENT,
    DISCARD_MESSAGE: AGENT,
    DISCARD_EVENT: AGENT,
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def decide_role(email: str, admins: Iterable[str], agents: Iterable[str], viewers: Iterable[str]) -> Optional[str]:
    """The highest role whose list names `email` (or its domain), or None."""
    email = (email or "").strip().lower()
    if not email:
        return None
    domain = "domain:" + email.rsplit("@", 1)[1] if "@" in email else None
    for role, names in ((ADMIN, admins), (AGENT, agents), (VIEWER, viewers)):
        listed = {name.strip().lower() for name in names if name.strip()}
        if email in listed or (domain is not None and domain in listed):
            return role
    return None


def at_least(role: Optional[str], wanted: str) -> bool:
    return role in _RANK and _RANK[role] >= _RANK[wanted]


def decide_action(role: Optional[str], action: str, amount: int = 0, agent_adjust_limit: int = 0) -> Decision:
    """Whether `role` may take `action`; `amount` is an adjustment's signed size."""
    least = ACTIONS.get(action)
    if least is None:
        return Decision(False, f"{action!r} is not an action of the console")
    if role not in _RANK:
        return Decision(False, "you have no role in the console")
    if not at_least(role, least):
        return Decision(False, f"a {role} may not {action.replace('_', ' ')}; it needs {least} or admin")
    if action == ADJUST and role == AGENT and abs(amount) > agent_adjust_limit:
        return Decision(False, f"an agent may adjust at most {agent_adjust_limit} credits at once; ask an admin")
    return Decision(True)


def may_act(role: Optional[str]) -> bool:
    """Whether the role may take any action (so the pages show the forms)."""
    return at_least(role, AGENT)
