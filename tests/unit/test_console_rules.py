"""The support console's pure rules: roles and permissions, the audit entry in a change's commit,
the IAP identity, the settings, the usage chart, the form keys. No emulator."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone

import pytest

from console import actions, roles
from console.config import load
from console.identity import IAP_ASSERTION_HEADER, IAP_EMAIL_HEADER, email_of_header, iap_email, verify_assertion
from console.reads import chart, ledger_filter
from shared.common.errors import ConfigurationError, InvalidRequest
from shared.ledger import collections
from shared.ledger.audit import AuditEntry, audited, reads_of
from shared.ledger.change import Change, Snapshot
from shared.ledger.codec import read_account
from shared.operations.adjustments import decide_adjustment, validate
from shared.operations.usage_rules import DayUsage
from tests.support.fake_ledger import numbered

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LIMIT = 100


# --- roles ---------------------------------------------------------------------------------

def test_a_person_gets_the_highest_role_any_list_gives_them():
    assert roles.decide_role("Ann@Example.com", ["ann@example.com"], ["ann@example.com"], []) == roles.ADMIN
    assert roles.decide_role("bob@example.com", [], ["bob@example.com"], ["bob@example.com"]) == roles.AGENT
    assert roles.decide_role("cy@example.com", [], [], ["cy@example.com"]) == roles.VIEWER


def test_a_domain_entry_gives_everyone_of_the_domain_its_role():
    assert roles.decide_role("dee@finance.example", [], [], ["domain:finance.example"]) == roles.VIEWER
    assert roles.decide_role("dee@other.example", [], [], ["domain:finance.example"]) is None


def test_someone_no_list_names_has_no_role():
    assert roles.decide_role("eve@example.com", ["ann@example.com"], [], []) is None
    assert roles.decide_role("", ["ann@example.com"], [], []) is None


@pytest.mark.parametrize("action", sorted(roles.ACTIONS))
def test_a_viewer_may_take_no_action(action):
    decision = roles.decide_action(roles.VIEWER, action, 1, LIMIT)
    assert not decision.allowed
    assert "viewer" in decision.reason


@pytest.mark.parametrize("action", sorted(roles.ACTIONS))
def test_an_agent_and_an_admin_may_take_every_action(action):
    assert roles.decide_action(roles.AGENT, action, 1, LIMIT).allowed
    assert roles.decide_action(roles.ADMIN, action, 1, LIMIT).allowed


def test_an_agent_adjusts_at_most_the_configured_size_either_way():
    assert roles.decide_action(roles.AGENT, roles.ADJUST, LIMIT, LIMIT).allowed
    assert roles.decide_action(roles.AGENT, roles.ADJUST, -LIMIT, LIMIT).allowed
    assert not roles.decide_action(roles.AGENT, roles.ADJUST, LIMIT + 1, LIMIT).allowed
    refused = roles.decide_action(roles.AGENT, roles.ADJUST, -(LIMIT + 1), LIMIT)
    assert not refused.allowed and "at most 100" in refused.reason


def test_an_admin_adjusts_beyond_the_agent_limit():
    assert roles.decide_action(roles.ADMIN, roles.ADJUST, 1_000_000, LIMIT).allowed


def test_no_role_and_unknown_actions_are_refused():
    assert not roles.decide_action(None, roles.REFUND, 0, LIMIT).allowed
    assert not roles.decide_action("superuser", roles.REFUND, 0, LIMIT).allowed
    assert not roles.decide_action(roles.ADMIN, "delete_user", 0, LIMIT).allowed


def test_only_agents_and_admins_see_the_forms():
    assert [roles.may_act(role) for role in (None, roles.VIEWER, roles.AGENT, roles.ADMIN)] == [False, False, True, True]


# --- the audit entry in the change's commit ---------------------------------------------------

def snapshot(user_id: str, data=None, documents=None) -> Snapshot:
    data = numbered(data)
    return Snapshot(read_account(user_id, data), data, dict(documents or {}), NOW)


def entry(key: str = "console:adjust:abc") -> AuditEntry:
    return AuditEntry(actor="alex@example.com", role="agent", action="adjust", reason="goodwill",
                      idempotency_key=key, user_id="u1", target="permanent", inputs={"amount": 20})


REQUEST = validate("u1", "permanent", 20, "goodwill", "alex@example.com", "console:adjust:abc")


def adjustment():
    return lambda snap: decide_adjustment(snap, REQUEST)


def test_an_audited_change_creates_its_entry_in_the_same_commit_with_what_changed():
    audit = entry()
    snap = snapshot("u1", {"credits_monthly": 5, "credits_permanent": 10},
                    {audit.path: None, REQUEST.command.path: None})
    change = audited(adjustment(), audit)(snap)
    document = change.create[audit.path]
    assert document["actor"] == "alex@example.com" and document["reason"] == "goodwill"
    assert document["idempotency_key"] == "console:adjust:abc" and document["at"] == NOW
    assert document["changed"]["before"] == {"credits_monthly": 5, "credits_permanent": 10, "credits_owed": 0}
    assert document["changed"]["after"] == {"credits_monthly": 5, "credits_permanent": 30, "credits_owed": 0}
    assert [r["type"] for r in document["changed"]["records"]] == ["adjustment"]
    # The audited change writes what the plain decision writes, plus the entry.
    plain = adjustment()(snap)
    assert change.account == plain.account and len(change.records) == len(plain.records)
    assert set(change.create) == set(plain.create) | {audit.path}


def test_once_the_entry_exists_the_decision_writes_nothing():
    audit = entry()
    snap = snapshot("u1", {"credits_monthly": 5, "credits_permanent": 10},
                    {audit.path: {"audit_id": "x"}, REQUEST.command.path: None})
    change = audited(adjustment(), audit)(snap)
    assert not change.writes_anything


def test_a_decision_that_writes_nothing_gets_no_entry():
    def nothing(snap):
        return Change(result="same")

    change = audited(nothing, entry())(snapshot("u1"))
    assert not change.writes_anything and change.result == "same"


def test_without_an_entry_the_decision_is_unchanged_and_reads_nothing_more():
    decide = adjustment()
    assert audited(decide, None) is decide
    assert reads_of(None) == []
    assert reads_of(entry()) == [collections.audit_entry("console:adjust:abc")]


def test_the_entry_id_is_derived_from_the_key_alone():
    assert entry("k1").path == entry("k1").path != entry("k2").path


# --- form keys and reasons -------------------------------------------------------------------

def test_an_actions_key_comes_from_the_forms_nonce():
    assert actions.key_of("refund", "n" * 24) == "console:refund:" + "n" * 24
    for bad in (None, "", "short", "has spaces in it ok?", "x" * 65):
        with pytest.raises(InvalidRequest):
            actions.key_of("refund", bad)


def test_every_action_needs_a_reason_of_at_most_400_characters():
    assert actions.reason_of("  why  ") == "why"
    for bad in (None, "", "   ", "x" * 401):
        with pytest.raises(InvalidRequest):
            actions.reason_of(bad)


# --- identity -------------------------------------------------------------------------------

def test_the_iap_email_header_names_the_person():
    assert email_of_header("accounts.google.com:Ann@Example.com") == "ann@example.com"
    assert email_of_header("ann@example.com") == "ann@example.com"
    assert email_of_header(None) is None
    assert email_of_header("accounts.google.com:") is None
    assert email_of_header("accounts.google.com:not-an-email") is None


def _signed(claims: dict, key_id: str = "k1"):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from google.auth import crypt, jwt

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    signer = crypt.ES256Signer.from_string(pem, key_id)
    return jwt.encode(signer, claims).decode(), {key_id: public}


def _claims(**overrides):
    now = int(time.time())
    return {"iss": "https://cloud.google.com/iap", "aud": "/projects/1/global/backendServices/2",
            "email": "ann@example.com", "sub": "accounts.google.com:1", "iat": now, "exp": now + 600, **overrides}


def test_a_valid_iap_assertion_names_its_email():
    token, keys = _signed(_claims())
    assert verify_assertion(token, "/projects/1/global/backendServices/2", keys) == "ann@example.com"


@pytest.mark.parametrize("overrides, audience", [
    ({}, "/projects/1/global/backendServices/other"),
    ({"iss": "https://accounts.google.com"}, "/projects/1/global/backendServices/2"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "/projects/1/global/backendServices/2"),
])
def test_an_iap_assertion_for_another_audience_issuer_or_time_names_no_one(overrides, audience):
    token, keys = _signed(_claims(**overrides))
    assert verify_assertion(token, audience, keys) is None


def test_an_iap_assertion_signed_by_another_key_names_no_one():
    token, _ = _signed(_claims())
    _, other_keys = _signed(_claims())
    assert verify_assertion(token, "/projects/1/global/backendServices/2", other_keys) is None


def test_with_an_audience_the_header_must_agree_with_a_verified_assertion(monkeypatch):
    from console import identity

    audience = "/projects/1/global/backendServices/2"
    token, keys = _signed(_claims())
    monkeypatch.setattr(identity, "iap_keys", lambda key_id: keys)
    header = {IAP_EMAIL_HEADER: "accounts.google.com:ann@example.com", IAP_ASSERTION_HEADER: token}
    assert iap_email(header, audience) == "ann@example.com"
    assert iap_email({**header, IAP_EMAIL_HEADER: "accounts.google.com:bob@example.com"}, audience) is None
    assert iap_email({IAP_EMAIL_HEADER: "accounts.google.com:ann@example.com"}, audience) is None
    # Without an audience only the header is read (safe only behind IAP).
    assert iap_email({IAP_EMAIL_HEADER: "accounts.google.com:ann@example.com"}, None) == "ann@example.com"


# --- settings ---------------------------------------------------------------------------------

def test_the_settings_read_the_role_lists_and_the_agent_limit():
    config = load({"CONSOLE_ADMINS": "a@x.com, b@x.com", "CONSOLE_AGENTS": "domain:x.com", "CONSOLE_VIEWERS": "",
                   "CONSOLE_AGENT_ADJUST_LIMIT": "250", "CONSOLE_SECRET_KEY": "s"})
    assert config.admins == ("a@x.com", "b@x.com") and config.agents == ("domain:x.com",) and config.viewers == ()
    assert config.agent_adjust_limit == 250 and not config.dev_sign_in


def test_the_development_sign_in_is_refused_in_google_cloud():
    with pytest.raises(ConfigurationError):
        load({"CONSOLE_DEV_SIGN_IN": "1", "K_SERVICE": "console"})
    assert load({"CONSOLE_DEV_SIGN_IN": "1"}).dev_sign_in


def test_a_secret_key_is_required_behind_iap_and_a_bad_limit_is_refused():
    with pytest.raises(ConfigurationError):
        load({})
    with pytest.raises(ConfigurationError):
        load({"CONSOLE_SECRET_KEY": "s", "CONSOLE_AGENT_ADJUST_LIMIT": "lots"})
    with pytest.raises(ConfigurationError):
        load({"CONSOLE_SECRET_KEY": "s", "CONSOLE_AGENT_ADJUST_LIMIT": "-1"})


# --- pages ------------------------------------------------------------------------------------

def test_the_ledger_filter_includes_the_last_day_whole_and_refuses_unknown_types():
    where = ledger_filter(["spent", "refund"], "permanent", "2026-03-01", "2026-03-02")
    assert where.types == ("refund", "spent") and where.pool == "permanent"
    assert where.since == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert where.until == datetime(2026, 3, 3, tzinfo=timezone.utc)
    with pytest.raises(InvalidRequest):
        ledger_filter(["stolen"], None, None, None)
    with pytest.raises(InvalidRequest):
        ledger_filter([], "gold", None, None)
    with pytest.raises(InvalidRequest):
        ledger_filter([], None, "yesterday", None)


def test_the_usage_chart_scales_bars_to_the_highest_figure():
    first, second = DayUsage(date(2026, 3, 1)), DayUsage(date(2026, 3, 2))
    first.figures["permanent"]["granted"] = 200
    second.figures["monthly"]["spent"] = 50
    drawn = chart([first, second], width=400, height=120)
    assert drawn["top"] == 200 and len(drawn["bars"]) == 8
    tallest = max(drawn["bars"], key=lambda bar: bar["height"])
    assert tallest["series"] == "permanent-granted" and tallest["height"] == 100
    assert all(bar["y"] + bar["height"] == pytest.approx(120) for bar in drawn["bars"])
    assert chart([])["bars"] == []
