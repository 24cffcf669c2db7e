"""The service behind a user's settings (`spend` function, CONTRACT section 3c).

Rules enforced here:
- a read writes nothing; a user with no record reads as no settings;
- a change is one `change_user` commit (the kernel's, conditioned on the user document read), so
  it lands whole or not at all, and releases the user's expired holds in the same commit like
  any other change; a change of nothing commits nothing; a change made in the support console
  holds its audit entry in the same commit, and a repeat under the entry's key changes nothing;
- the answer to a change is what `GET` answers once it committed, read back: the auto top-up
  attempt the kernel may add to the same commit shows as its `pending_attempt`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..common import log
from ..ledger import collections
from ..ledger.audit import AuditEntry, audited, reads_of
from ..store import documents
from ..store.client import utcnow
from ..store.commit import change_user
from .settings import AUTO_TOPUP, decide_settings, settings_view


def get_settings(user_id: str) -> dict[str, Any]:
    return settings_view(user_id, documents.read(collections.user(user_id)), utcnow())


def put_settings(user_id: str, changes: Mapping[str, Any], audit: Optional[AuditEntry] = None) -> dict[str, Any]:
    """Change the named settings; what `get_settings` answers after. With `audit`, its entry is
    created in the same commit, and a repeat under the entry's key changes nothing."""
    result = change_user(user_id, audited(lambda snap: decide_settings(snap, changes), audit),
                         reads=reads_of(audit), operation="settings")
    log.info("settings changed", user_id=user_id, outcome="changed", settings=sorted(changes))
    if changes.get(AUTO_TOPUP) is None:
        return result
    return get_settings(user_id)
