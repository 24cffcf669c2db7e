"""The support console: server-rendered pages to find a user, read their ledger and put things right.

Rules enforced here:
- every page needs a signed-in person with a role (`identity`, `roles`); without one the answer
  is 403 (or, with the local development sign-in, the sign-in page);
- every form is a POST with a CSRF token (Flask-WTF's `CSRFProtect`, checked before any view);
  a missing or wrong token is 400 and nothing is done;
- every action is `actions.*` (checked, keyed by the form's nonce, audited), then a redirect back
  to the page it came from with what happened (post/redirect/get, so a reload repeats nothing);
- a refused or failed action is shown on the page with the error envelope's code and message
  (403 for a role that may not, 4xx for the rules, 503 for an outage); no input gets a 500;
- nothing secret reaches the browser: no key, no token but the CSRF token of the person's own
  session; responses are `no-store`, framed by no one, and scripts are limited to the console's own;
- only the console's own static files are served (no CDN: nothing is fetched from elsewhere).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from flask import Flask, abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from shared.common import log
from shared.common.errors import CreditsError, Forbidden

from . import actions, reads, roles
from .config import ConsoleSettings, load
from .identity import Actor, iap_email

SESSION_ACTOR, SESSION_ROLE = "actor", "role"
MAX_ACTOR = 100


def create_app(config: Optional[ConsoleSettings] = None) -> Flask:
    config = config or load()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Behind IAP the console is served over HTTPS only; a local run is plain HTTP.
        SESSION_COOKIE_SECURE=not config.dev_sign_in,
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    CSRFProtect(app)
    app.extensions["console_settings"] = config

    @app.before_request
    def sign_in_required():
        g.actor = _actor(config)
        if request.endpoint in ("static", "sign_in", "sign_out"):
            return None
        if g.actor is None or g.actor.role is None:
            if config.dev_sign_in:
                return redirect(url_for("sign_in", next=request.full_path))
            return _page("error.html", 403, title="Not allowed",
                         error={"code": "forbidden", "message": "you have no role in the support console"})
        return None

    @app.after_request
    def headers(response):
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(exc):
        return _page("error.html", 400, title="Form expired",
                     error={"code": "csrf", "message": f"{exc.description} Reload the page and try again."})

    @app.errorhandler(CreditsError)
    def refused(exc: CreditsError):
        status = exc.status if 400 <= exc.status < 600 else 500
        return _page("error.html", status, title="Refused", error=exc.body()["error"])

    @app.errorhandler(404)
    def missing(exc):
        return _page("error.html", 404, title="Not found", error={"code": "not_found", "message": "no such page"})

    @app.errorhandler(405)
    def wrong_method(exc):
        return _page("error.html", 405, title="Not allowed",
                     error={"code": "method_not_allowed", "message": "this page does not take that method"})

    @app.errorhandler(Exception)
    def failed(exc):
        if isinstance(exc, HTTPException):
            return exc
        log.error("console page failed", error=type(exc).__name__, detail=str(exc)[:300])
        return _page("error.html", 503, title="Unavailable",
                     error={"code": "unavailable", "message": "the console could not finish this; nothing more was done. Retry."})

    _routes(app, config)
    return app


def _actor(config: ConsoleSettings) -> Optional[Actor]:
    if config.dev_sign_in:
        email = session.get(SESSION_ACTOR)
        role = session.get(SESSION_ROLE)
        return Actor(email, role if role in roles.ROLES else None) if email else None
    email = iap_email(request.headers, config.iap_audience)
    if email is None:
        return None
    return Actor(email, roles.decide_role(email, config.admins, config.agents, config.viewers))


def _page(template: str, status: int = 200, **context: Any):
    return render_template(template, actor=g.get("actor"), may_act=roles.may_act(getattr(g.get("actor"), "role", None)),
                           **context), status


def nonce() -> str:
    """A fresh form's nonce: what makes its action's idempotency key."""
    return secrets.token_urlsafe(18)


def _done(target: str, do: Callable[[], actions.Done]):
    """Run an action and go back to `target` saying what happened (a refusal says why)."""
    try:
        done = do()
    except Forbidden as exc:
        return _page("error.html", 403, title="Not allowed", error=exc.body()["error"])
    except CreditsError as exc:
        if exc.transient:
            flash(f"unavailable: {exc.message}; nothing was done, retry", "error")
        else:
            flash(f"{exc.code}: {exc.message}", "error")
        return redirect(target, 303)
    flash(done.message, "info" if done.already else "success")
    return redirect(target, 303)


def _routes(app: Flask, config: ConsoleSettings) -> None:
    app.jinja_env.globals.update(nonce=nonce, types=reads.TYPES, pools=reads.POOLS)

    @app.get("/")
    def home():
        return _page("home.html", title="Find a user")

    @app.get("/search")
    def search():
        query = request.args.get("q", "").strip()
        matches = reads.find(query)
        users = sorted({m.user_id for m in matches})
        if len(users) == 1:
            return redirect(url_for("user", user_id=users[0]), 303)
        return _page("search.html", title="Search", query=query, matches=matches)

    @app.get("/users/<user_id>")
    def user(user_id: str):
        view = reads.overview(reads.user_id_of(user_id))
        return _page("user.html", title=f"User {user_id}", u=view)

    @app.get("/users/<user_id>/ledger")
    def ledger(user_id: str):
        user_id = reads.user_id_of(user_id)
        types = [t for t in request.args.getlist("type") if t]
        pool = request.args.get("pool") or None
        since, until = request.args.get("since") or None, request.args.get("until") or None
        where = reads.ledger_filter(types, pool, since, until)
        page = reads.ledger(user_id, where, request.args.get("page_token"))
        query = {"type": types, "pool": pool or "", "since": since or "", "until": until or ""}
        more = (url_for("ledger", user_id=user_id) + "?" + urlencode({**query, "page_token": page["next_page_token"]}, doseq=True)
                if page["next_page_token"] else None)
        return _page("ledger.html", title=f"Ledger of {user_id}", user_id=user_id, page=page, chosen=query, more=more)

    @app.get("/events")
    def events():
        return _page("events.html", title="Kept events", kept=reads.kept())

    @app.get("/usage")
    def usage():
        today = datetime.now(timezone.utc).date()
        start = reads.day_of(request.args.get("from"), "from") or today - timedelta(days=29)
        end = reads.day_of(request.args.get("to"), "to") or today
        return _page("usage.html", title="Pool usage", start=start, end=end, report=reads.usage_report(start, end))

    @app.get("/health")
    def health():
        return _page("health.html", title="Health", report=reads.health_report())

    @app.get("/audit")
    def audit():
        return _page("audit.html", title="Audit", entries=reads.audit_latest())

    def back(user_id: str) -> str:
        return url_for("user", user_id=user_id)

    @app.post("/users/<user_id>/adjust")
    def adjust(user_id: str):
        user_id = reads.user_id_of(user_id)
        return _done(back(user_id), lambda: actions.adjust(g.actor, config, user_id, request.form))

    @app.post("/users/<user_id>/refund")
    def refund(user_id: str):
        user_id = reads.user_id_of(user_id)
        return _done(back(user_id), lambda: actions.refund(g.actor, config, user_id, request.form))

    @app.post("/users/<user_id>/release")
    def release(user_id: str):
        user_id = reads.user_id_of(user_id)
        return _done(back(user_id), lambda: actions.release_hold(g.actor, config, user_id, request.form))

    @app.post("/users/<user_id>/auto-topup")
    def auto_topup(user_id: str):
        user_id = reads.user_id_of(user_id)
        return _done(back(user_id), lambda: actions.auto_topup(g.actor, config, user_id, request.form))

    @app.post("/events/replay")
    def replay_event():
        return _done(url_for("events"), lambda: actions.replay_event(g.actor, config, request.form))

    @app.post("/events/discard")
    def discard_event():
        return _done(url_for("events"), lambda: actions.discard_event(g.actor, config, request.form))

    @app.post("/messages/replay")
    def replay_message():
        return _done(url_for("events"), lambda: actions.replay_message(g.actor, config, request.form))

    @app.post("/messages/discard")
    def discard_message():
        return _done(url_for("events"), lambda: actions.discard_message(g.actor, config, request.form))

    @app.route("/sign-in", methods=["GET", "POST"])
    def sign_in():
        if not config.dev_sign_in:
            abort(404)
        target = request.values.get("next") or "/"
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if request.method == "POST":
            email = (request.form.get("actor") or "").strip()
            role = request.form.get("role")
            if not email or len(email) > MAX_ACTOR or role not in roles.ROLES:
                flash("name yourself (1 to 100 characters) and pick a role", "error")
                return _page("sign_in.html", 400, title="Sign in (development)", target=target)
            session.clear()
            session[SESSION_ACTOR], session[SESSION_ROLE] = email, role
            return redirect(target, 303)
        return _page("sign_in.html", title="Sign in (development)", target=target)

    @app.post("/sign-out")
    def sign_out():
        session.clear()
        return redirect(url_for("sign_in") if config.dev_sign_in else "/", 303)

    @app.template_filter("when")
    def when(value: Any) -> str:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, (int, float)) and value > 10**9:
            return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, str) and len(value) >= 19 and value[10] == "T":
            return value[:19].replace("T", " ")
        return "" if value is None else str(value)

    @app.template_filter("signed")
    def signed(value: Any) -> str:
        return f"{value:+d}" if isinstance(value, int) else str(value)

