"""Publish a promotional campaign: permanent credits for a list of users, through Pub/Sub.

    python -m tools.publish_campaign --grant-id spring-2026 --amount 100 \\
        --description "Spring promotion" users.txt

User ids come from a file (one per line, or a CSV column with `--column NAME`) or from
standard input (`-`). They are checked and de-duplicated before anything is published, then
sent in messages of at most 500 users to the `promo-grants` topic (the Pub/Sub emulator when
PUBSUB_EMULATOR_HOST is set). Re-running with the same grant id is safe: a user who already
has the grant is never granted it again, so an interrupted run is finished by running it again.

With `--wait` (for up to `--wait-seconds`, default 300) the command then reads each user's grant record back from Firestore (the same
project, `FIRESTORE_EMULATOR_HOST` locally) until every user has one or the wait is over, and
reports per message how many users were granted now, already had the grant, or hold a grant of
this id with another amount (conflicting: the first grant stands).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, TextIO

from pydantic import TypeAdapter, ValidationError

from shared.common.errors import CreditsError
from shared.promotions.schemas import MAX_USERS, PromoMessage
from shared.common.validation import UserId

DEFAULT_TOPIC = "promo-grants"
DEFAULT_WAIT_S = 300
POLL_S = 1.0
EXIT_CONFLICTING = 1
EXIT_NOT_APPLIED = 3
LOCAL_PROJECT = "demo-credits"
_USER_ID = TypeAdapter(UserId)


class CampaignError(Exception):
    """Bad input: nothing is published."""


def read_user_ids(stream: TextIO, column: Optional[str] = None) -> list[tuple[int, str]]:
    """(line number, user id) pairs in input order, blank lines skipped."""
    if column is None:
        rows = ((number, line.strip()) for number, line in enumerate(stream, start=1))
        return [(number, user_id) for number, user_id in rows if user_id]
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or column not in reader.fieldnames:
        raise CampaignError(f"the CSV has no column {column!r} (columns: {', '.join(reader.fieldnames or [])})")
    pairs = []
    for row in reader:
        user_id = (row.get(column) or "").strip()
        if user_id:
            pairs.append((reader.line_num, user_id))
    return pairs


def distinct_valid(pairs: Iterable[tuple[int, str]]) -> list[str]:
    """The distinct user ids in input order; CampaignError naming every invalid one."""
    bad = []
    for number, user_id in pairs:
        try:
            _USER_ID.validate_python(user_id)
        except ValidationError:
            bad.append(f"line {number}: {user_id[:80]!r}")
    if bad:
        shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise CampaignError(f"{len(bad)} invalid user id(s); nothing was published:\n  {shown}")
    distinct = list(dict.fromkeys(user_id for _, user_id in pairs))
    if not distinct:
        raise CampaignError("no user ids in the input; nothing was published")
    return distinct


def messages(grant_id: str, amount: int, description: Optional[str], user_ids: list[str], size: int) -> list[bytes]:
    """The campaign as message data, `size` users each, each valid for `promo_grant`."""
    out = []
    for start in range(0, len(user_ids), size):
        body = {"grant_id": grant_id, "user_ids": user_ids[start : start + size], "amount": amount}
        if description:
            body["description"] = description
        try:
            PromoMessage.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise CampaignError(f"the campaign is invalid: {problems}") from None
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def project_id(explicit: Optional[str]) -> str:
    project = explicit or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    if project:
        return project
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return LOCAL_PROJECT
    raise CampaignError("no project: pass --project or set GOOGLE_CLOUD_PROJECT")


def topic_path_of(topic: str, project: Optional[str]) -> str:
    """A full topic path as given (`projects/P/topics/T`, what Terraform outputs), or built from a name."""
    if topic.startswith("projects/"):
        if len(topic.split("/")) != 4 or topic.split("/")[2] != "topics":
            raise CampaignError(f"{topic!r} is not a topic path (projects/PROJECT/topics/TOPIC)")
        return topic
    return f"projects/{project_id(project)}/topics/{topic}"


def publish(topic_path: str, payloads: list[bytes], grant_id: str, out: TextIO) -> list[str]:
    """Publish every message, waiting for each to be accepted, and report progress on `out`;
    the message ids, in order."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    try:
        publisher.get_topic(topic=topic_path, timeout=30)
    except gexc.NotFound:
        raise CampaignError(f"topic {topic_path} does not exist") from None
    except gexc.PermissionDenied:
        pass  # Publishers may lack topics.get; publishing itself will tell.
    total = len(payloads)
    futures = [
        publisher.publish(topic_path, data, grant_id=grant_id, part=f"{number}/{total}")
        for number, data in enumerate(payloads, start=1)
    ]
    users = 0
    message_ids = []
    for number, (future, data) in enumerate(zip(futures, payloads), start=1):
        try:
            message_id = future.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - reported with the way to finish the campaign
            raise CampaignError(
                f"message {number}/{total} was not published ({type(exc).__name__}: {exc}); "
                "run the same command again to finish the campaign (no one is granted twice)"
            ) from None
        users += len(json.loads(data)["user_ids"])
        message_ids.append(message_id)
        out.write(f"published message {number}/{total} (id {message_id}): {users} users so far\n")
        out.flush()
    return message_ids


@dataclass
class MessageOutcome:
    """What one message did, user by user, as read back from the grant records."""

    users: list[str]
    granted: list[str] = field(default_factory=list)
    already_granted: list[str] = field(default_factory=list)
    conflicting: dict[str, int] = field(default_factory=dict)
    not_applied: list[str] = field(default_factory=list)


def outcomes(
    grant_id: str,
    amount: int,
    chunks: list[list[str]],
    before: dict[str, Optional[int]],
    read: Callable[[list[str]], dict[str, Optional[int]]],
    wait_s: float,
    poll_s: float = POLL_S,
) -> list[MessageOutcome]:
    """Poll `read` for the users without a grant record until all have one or `wait_s` passes,
    then sort every user of every message by what happened to them."""
    now = dict(before)
    deadline = time.monotonic() + wait_s
    while True:
        missing = [user_id for user_id, seen in now.items() if seen is None]
        if missing:
            now.update(read(missing))
        if all(seen is not None for seen in now.values()) or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    report = []
    for users in chunks:
        outcome = MessageOutcome(users)
        for user_id in users:
            seen = now.get(user_id)
            if seen is None:
                outcome.not_applied.append(user_id)
            elif seen != amount:
                outcome.conflicting[user_id] = seen
            elif before.get(user_id) is not None:
                outcome.already_granted.append(user_id)
            else:
                outcome.granted.append(user_id)
        report.append(outcome)
    return report


def report_outcomes(report: list[MessageOutcome], message_ids: list[str], amount: int, wait_s: float,
                    out: TextIO) -> int:
    """One line per message and the totals; the exit status."""
    total = len(report)
    for number, (outcome, message_id) in enumerate(zip(report, message_ids), start=1):
        out.write(
            f"message {number}/{total} (id {message_id}): {len(outcome.granted)} granted, "
            f"{len(outcome.already_granted)} already granted, {len(outcome.conflicting)} conflicting"
            + (f", {len(outcome.not_applied)} not applied yet" if outcome.not_applied else "")
            + "\n"
        )
        for user_id, seen in list(outcome.conflicting.items())[:20]:
            out.write(f"  conflicting: {user_id} was granted {seen} under this grant id before, not {amount}\n")
    conflicting = sum(len(o.conflicting) for o in report)
    not_applied = sum(len(o.not_applied) for o in report)
    out.write(
        f"outcome: {sum(len(o.granted) for o in report)} granted, {sum(len(o.already_granted) for o in report)} "
        f"already granted, {conflicting} conflicting, {not_applied} not applied yet\n"
    )
    if conflicting:
        out.write("conflicting users keep their first grant: use a new grant id for a new amount\n")
        return EXIT_CONFLICTING
    if not_applied:
        out.write(f"{not_applied} user(s) had no grant record after {wait_s:.0f}s: promo_grant may be down or "
                  "retrying; check again later with the same command (nobody is granted twice)\n")
        return EXIT_NOT_APPLIED
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _wait_seconds(wait: bool, seconds: Optional[float]) -> Optional[float]:
    """How long to wait for the grant records, or None for no wait: `--wait-seconds` implies `--wait`."""
    if seconds is not None:
        return seconds
    return float(DEFAULT_WAIT_S) if wait else None


def main(argv: Optional[list[str]] = None, stdin: Optional[TextIO] = None, out: Optional[TextIO] = None) -> int:
    """Exit status 0 when every message is published (and, with --wait, applied), 2 on bad input or
    a failed publish; with --wait, 1 when a user holds this grant id with another amount, 3 when
    some users had no grant record when the wait ended."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="publish-campaign", description="Publish a promotional grant of permanent credits to a list of users."
    )
    parser.add_argument("--grant-id", required=True, help="the campaign's id; re-using it never grants anyone twice")
    parser.add_argument("--amount", required=True, type=int, help="credits per user (1 to 1,000,000)")
    parser.add_argument("--description", default=None, help="shown in each user's history (up to 500 characters)")
    parser.add_argument("--column", default=None, help="read user ids from this column of a CSV file with a header")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"Pub/Sub topic name or full path (default {DEFAULT_TOPIC})")
    parser.add_argument("--project", default=None, help="Google Cloud project (default $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--chunk-size", type=int, default=MAX_USERS, help=f"users per message (1 to {MAX_USERS})")
    parser.add_argument("--dry-run", action="store_true", help="check the input and show the plan, publish nothing")
    # A flag, with its time apart: an option with an optional value would take the file name
    # after it (`--wait users.txt`) as its number of seconds.
    parser.add_argument("--wait", action="store_true",
                        help="then read every user's grant record back from Firestore and report the outcome "
                             "per message")
    parser.add_argument("--wait-seconds", type=float, default=None, metavar="SECONDS",
                        help=f"how long --wait waits for the grant records (default {DEFAULT_WAIT_S}; implies --wait)")
    parser.add_argument("source", help="file of user ids, or - for standard input")
    args, extra = parser.parse_known_args(argv)
    if extra:
        hint = (f" (--wait takes no number: use --wait-seconds {args.source})"
                if args.wait and _is_number(args.source) else "")
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    wait_s = _wait_seconds(args.wait, args.wait_seconds)
    if wait_s is not None and wait_s < 0:
        parser.error("--wait-seconds must be 0 or more")
    try:
        if not 1 <= args.chunk_size <= MAX_USERS:
            raise CampaignError(f"--chunk-size must be 1 to {MAX_USERS}")
        if args.source == "-":
            stream = stdin or sys.stdin
            pairs = read_user_ids(io.StringIO(stream.read()), args.column)
        else:
            with open(args.source, newline="", encoding="utf-8-sig") as stream:
                pairs = read_user_ids(stream, args.column)
        user_ids = distinct_valid(pairs)
        payloads = messages(args.grant_id, args.amount, args.description, user_ids, args.chunk_size)
        duplicates = len(pairs) - len(user_ids)
        out.write(
            f"campaign {args.grant_id!r}: {args.amount} credits each to {len(user_ids)} users"
            f"{f' ({duplicates} repeated ids dropped)' if duplicates else ''}, in {len(payloads)} message(s)\n"
        )
        if args.dry_run:
            out.write("dry run: nothing published\n")
            return 0
        where = f"the emulator at {os.environ['PUBSUB_EMULATOR_HOST']}" if os.environ.get("PUBSUB_EMULATOR_HOST") else "Pub/Sub"
        topic_path = topic_path_of(args.topic, args.project)
        out.write(f"publishing to {topic_path} on {where}\n")
        if wait_s is not None:
            from shared.promotions.outcomes import granted_amounts

            try:
                before = granted_amounts(args.grant_id, user_ids)
            except CreditsError as err:
                raise CampaignError(f"cannot read the grant records for --wait ({err.message}); nothing was published") from None
        message_ids = publish(topic_path, payloads, args.grant_id, out)
    except (CampaignError, OSError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    out.write(f"done: {len(payloads)} message(s) published for campaign {args.grant_id!r}\n")
    if wait_s is None:
        return 0
    out.write(f"waiting up to {wait_s:.0f}s for every user's grant record ...\n")
    out.flush()
    chunks = [json.loads(data)["user_ids"] for data in payloads]
    try:
        report = outcomes(args.grant_id, args.amount, chunks, before,
                          lambda users: granted_amounts(args.grant_id, users), wait_s)
    except CreditsError as err:
        sys.stderr.write(f"error: published, but the grant records could not be read: {err.message}\n")
        return EXIT_NOT_APPLIED
    return report_outcomes(report, message_ids, args.amount, wait_s, out)


if __name__ == "__main__":
    sys.exit(main())
