"""The support console's settings, from the environment, checked once per instance.

Settings (all optional unless said):
- `CONSOLE_ADMINS`, `CONSOLE_AGENTS`, `CONSOLE_VIEWERS`: comma-separated emails, or
  `domain:example.com` for a whole domain; a person's role is the highest list naming them
  (`roles.decide_role`). Grant the group's members access in IAP, and name them here.
- `CONSOLE_AGENT_ADJUST_LIMIT`: the most credits an agent may add or remove in one adjustment
  (default 1000); an admin is bounded only by the ledger's own limit.
- `CONSOLE_SECRET_KEY`: signs the session cookie and the CSRF tokens; required in Google Cloud
  (from Secret Manager); a local run with the development sign-in makes one per process.
- `CONSOLE_IAP_AUDIENCE`: the IAP audience (`/projects/NUMBER/global/backendServices/ID`); when
  set, every request's `X-Goog-IAP-JWT-Assertion` is verified against Google's IAP keys and
  must name the same email as `X-Goog-Authenticated-User-Email`.
- `CONSOLE_DEV_SIGN_IN=1`: a local sign-in page where you name the actor and pick a role,
  instead of IAP. Refused where Cloud Run or Cloud Functions runs the console (`K_SERVICE` is
  set), so it can never be on in Google Cloud.

Rules enforced here:
- a setting that does not parse is a `ConfigurationError` naming it, never a silent default;
- the development sign-in and IAP exclude each other: with it on, IAP headers are ignored.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Mapping, Optional

from shared.common.errors import ConfigurationError

DEFAULT_AGENT_ADJUST_LIMIT = 1000


@dataclass(frozen=True)
class ConsoleSettings:
    admins: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()
    agent_adjust_limit: int = DEFAULT_AGENT_ADJUST_LIMIT
    secret_key: str = ""
    iap_audience: Optional[str] = None
    dev_sign_in: bool = False


def _names(text: Optional[str]) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def load(env: Optional[Mapping[str, str]] = None) -> ConsoleSettings:
    env = os.environ if env is None else env
    dev = (env.get("CONSOLE_DEV_SIGN_IN") or "").strip() == "1"
    if dev and env.get("K_SERVICE"):
        raise ConfigurationError("CONSOLE_DEV_SIGN_IN is for local runs only; it is refused in Google Cloud")
    raw_limit = (env.get("CONSOLE_AGENT_ADJUST_LIMIT") or str(DEFAULT_AGENT_ADJUST_LIMIT)).strip()
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ConfigurationError(f"CONSOLE_AGENT_ADJUST_LIMIT={raw_limit!r} is not a whole number") from None
    if limit < 0:
        raise ConfigurationError("CONSOLE_AGENT_ADJUST_LIMIT must not be negative")
    secret = (env.get("CONSOLE_SECRET_KEY") or "").strip()
    if not secret:
        if not dev:
            raise ConfigurationError("CONSOLE_SECRET_KEY is required (it signs sessions and CSRF tokens)")
        secret = secrets.token_urlsafe(32)
    return ConsoleSettings(
        admins=_names(env.get("CONSOLE_ADMINS")),
        agents=_names(env.get("CONSOLE_AGENTS")),
        viewers=_names(env.get("CONSOLE_VIEWERS")),
        agent_adjust_limit=limit,
        secret_key=secret,
        iap_audience=(env.get("CONSOLE_IAP_AUDIENCE") or "").strip() or None,
        dev_sign_in=dev,
    )
