"""What a campaign did for each user, read back from the grant records (for the campaign command).

Rules enforced here:
- a user has a campaign's grant exactly when its record `credits_transactions/{grant_record_id}`
  exists (it is created in the commit of the grant, never overwritten), so the record is the
  truth about the outcome, whatever the function logged;
- a record whose amount differs from the campaign's is a conflicting grant id: the first grant
  stands and the user was not granted this campaign's amount.
"""

from __future__ import annotations

from typing import Optional

from ..common import ids
from ..ledger import collections
from ..store import documents


def granted_amounts(grant_id: str, user_ids: list[str]) -> dict[str, Optional[int]]:
    """Each user's amount granted under `grant_id`, or None when they have no grant of it yet."""
    paths = {collections.transaction(ids.grant_record_id(grant_id, user_id)): user_id for user_id in user_ids}
    found = documents.read_many(list(paths))
    return {paths[path]: data.get("amount") if data else None for path, data in found.items()}
