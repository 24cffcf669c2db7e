"""`credits topup show|enable|disable USER`: a user's auto top-up as an operator sees it, and
switching it on or off by the same commit as the user's own `PUT /users/{id}/settings`."""

from __future__ import annotations

import os
from typing import Any, TextIO

from shared.spending import settings_service

from ..common import EXIT_OK, add_command, login, user_id_argument
from ..output import emit_json, write_table

SWITCH_HELP = (
    "{verb} the user's auto top-up: their stored setting is put again with enabled={value}, exactly as "
    "PUT /users/{{id}}/settings would put it, so the user's price, quantity, threshold, monthly limit, "
    "customer and payment method are kept and the state restarts: status active, 0 failures, no backoff "
    "(a setting disabled by declines, a refund or dispute, or waiting for authentication starts again{extra}). "
    "Logged with --operator and --reason. A user without a setting is refused (exit 1): the app puts one."
)


def add_parser(subparsers):
    p = add_command(subparsers, "topup", help="a user's auto top-up: show its state and attempts, enable or disable it")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = add_command(
        actions, "show", help="the setting, its state and the recent attempts",
        description=(
            "The user's auto top-up setting and its state (status active, disabled or action_required, and "
            "why; consecutive failures; when the backoff after the last failure ends; the pending attempt), "
            "what holds the next attempt back, this month's attempts against the monthly limit and the "
            "credits topped up this month, and the most recent attempts with their status (--json adds their ids)."
        ),
    )
    show.add_argument("user_id", metavar="USER", type=user_id_argument)
    show.add_argument("--limit", type=int, default=10, help="how many recent attempts to list (default 10, at most 100)")
    for name, value, extra in (("enable", "true", "; below the threshold, the first attempt is made in the same commit"), ("disable", "false", "; a pending attempt is then canceled, "
                                                                          "nothing charged")):
        switch = add_command(actions, name, help=f"{name} the user's auto top-up (as a PUT of their setting would)",
                             description=SWITCH_HELP.format(verb=name.capitalize(), value=value, extra=extra))
        switch.add_argument("user_id", metavar="USER", type=user_id_argument)
        switch.add_argument("--reason", required=True, help="why, for the log (1 to 400 characters)")
        switch.add_argument("--operator", default=os.environ.get("CREDITS_OPERATOR") or login(),
                            help="who is switching it (default: $CREDITS_OPERATOR, else your login name)")
    return p


def run(args, out: TextIO, err: TextIO) -> int:
    if args.action == "show":
        report = settings_service.topup_report(args.user_id, max(1, min(args.limit, 100)))
        if args.json:
            emit_json(out, report)
        else:
            _write_report(out, report)
        return EXIT_OK
    view = settings_service.switch_topup(args.user_id, args.action == "enable", args.operator, args.reason)
    if args.json:
        emit_json(out, view)
    else:
        out.write(f"auto top-up of {args.user_id} {args.action}d\n")
        _write_setting(out, view["auto_topup"])
    return EXIT_OK


def _write_setting(out: TextIO, setting: dict[str, Any], end: str = "\n") -> None:
    rows = [[key, "-" if value is None else str(value).lower() if isinstance(value, bool) else value]
            for key, value in setting.items()]
    write_table(out, ["field", "value"], rows, keep=["field"], end=end)


def _write_report(out: TextIO, report: dict[str, Any]) -> None:
    setting = report["auto_topup"]
    if setting is None:
        out.write(f"{report['user_id']} has no auto top-up setting\n")
        return
    _write_setting(out, setting, end="\n\n")
    blocked = report["blocked_by"]
    out.write("next attempt: " + ("made by the next change below the threshold" if blocked is None else
                                  f"held back ({blocked})") + "\n")
    if report["backoff_until"] is not None:
        out.write(f"backoff after the last failure ends {_moment(report['backoff_until'])}\n")
    out.write(f"this month ({report['month']}): {setting['this_month']} of {setting['monthly_limit']} attempts "
              f"counted, {report['month_succeeded']} succeeded, {report['month_credits']} credits topped up\n\n")
    # The attempt ids (48 characters) would not fit beside the rest: --json lists them.
    write_table(out, ["created_at", "status", "credits", "reason", "payment_intent"],
                [[_moment(a["created_at"]), a["status"], a["credits"], a["reason"] or "-", a["payment_intent"] or "-"]
                 for a in report["attempts"]], keep=["created_at", "status", "payment_intent"])


def _moment(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"
