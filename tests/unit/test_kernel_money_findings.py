"""Two ways the store could give out credits it should not, each reproduced on the in-memory Firestore.

- Refunds of one spend keep what was given back in `spend_refunds/{digest}`, which every refund
  overwrites; if only the user document conditions a refund's commit, a refund that reads that
  document while another refund's commit is only partly visible (the user document new, the
  give-back total old) refunds again what was already given back.
- A promotion batch whose commit reply was lost is resolved on its first user; if that user
  already had the grant (an earlier delivery), the grant record found there says nothing about
  this commit, and taking it as "landed" would leave the other users without their credits.
"""

from __future__ import annotations

import pytest

from shared.common.errors import CreditsError
from shared.ledger import collections
from shared.promotions import service as promo_service
from shared.promotions.schemas import PromoMessage
from shared.spending import holds_service
from shared.spending.refunds import RefundRequest, decide_refund
from shared.store import commit
from tests.support.fake_ledger import (
    as_another_instance,
    assert_pools_match_records,
    pools,
    records,
    seed,
    spend_decision,
)


def refund_as_another_instance(request: RefundRequest):
    """The refunds service's change on another instance (no lock shared with this one)."""
    return as_another_instance(
        lambda: commit._change_user(request.user_id, lambda snap: decide_refund(snap, request), request.reads, "refund"))


def test_refunds_read_while_another_refund_is_half_visible_never_give_back_more_than_the_spend(fake_db, quick_retries):
    seed("ann", 100)
    decide, reads = spend_decision("ann", 90, key="buy")
    commit.change_user("ann", decide, reads=reads, operation="spend")
    answers = {}

    def refund_b():
        try:
            answers["b"] = refund_as_another_instance(RefundRequest("ann", "buy"))  # all that remains
        except CreditsError as exc:
            answers["b"] = exc

    # A commit holds its witness first, then the user document, the records, the markers, and last
    # the give-back totals: after two writes, a reader sees refund A's user document and the old totals.
    fake_db.tear_next_commit(after_writes=2, during=refund_b)
    holds_service.refund(RefundRequest("ann", "buy", amount=50))
    if isinstance(answers["b"], CreditsError) and answers["b"].transient:
        # Refused while A was half visible: the caller retries once A is whole.
        try:
            answers["b"] = refund_as_another_instance(RefundRequest("ann", "buy"))
        except CreditsError as exc:
            answers["b"] = exc

    refunded = sum(record["amount"] for record in records(fake_db, "ann", "refund", "buy"))
    given_back = fake_db.doc(collections.spend_refunds("buy")) or {}
    user = fake_db.doc(collections.user("ann"))
    assert refunded <= 90, f"refunds of a spend of 90 gave back {refunded}"
    assert given_back.get("total") == refunded, (given_back, refunded)
    assert user["total_spent"] >= 0, user
    assert pools(fake_db, "ann")[1] <= 100, pools(fake_db, "ann")
    assert_pools_match_records(fake_db, "ann")


@pytest.mark.parametrize("blind", [True, False], ids=["users-assumed-new", "users-read"])
def test_a_promo_batch_whose_commit_was_held_grants_every_user_once_after_redelivery(fake_db, quick_retries, monkeypatch, blind):
    guess = promo_service._NewUsersGuess()
    if not blind:
        guess.met_existing()
    monkeypatch.setattr(promo_service, "_guess", guess)
    users = ["first", "second", "third"]
    message = PromoMessage(grant_id="spring", user_ids=users, amount=25)
    # An earlier delivery reached the first user only.
    promo_service.grant(PromoMessage(grant_id="spring", user_ids=users[:1], amount=25))

    fake_db.hold_next_commit()
    acknowledged, deliveries = None, 0
    while acknowledged is None and deliveries < 3:
        # Pub/Sub delivers again only what was not acknowledged (a raise).
        deliveries += 1
        try:
            acknowledged = promo_service.grant(message, message_id="m-1")
        except CreditsError as err:
            assert err.transient, err
    fake_db.release_held()  # the held commit reaches Firestore at last: it must change nothing

    assert acknowledged is not None
    for user_id in users:
        grants = records(fake_db, user_id, "promo_grant", "spring")
        assert [r["amount"] for r in grants] == [25], f"{user_id} has grant records {grants} after {deliveries} deliveries"
        assert pools(fake_db, user_id) == (0, 25)
        assert_pools_match_records(fake_db, user_id)
    assert acknowledged.granted + acknowledged.already_granted == 3
