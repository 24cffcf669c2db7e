"""The client of the credits API (the `spend` function): one method per route of its OpenAPI document.

Rules:
- every write carries an idempotency key (spends and refunds: `idempotency_key`, holds: `hold_id`);
  when the caller gives none, one is generated per call and the same key goes out on every retry
  of that call, so a retried call is done at most once;
- a 503 (`unavailable`, nothing written) and a connection fault (refused, reset, timed out, a reply
  lost on the way) are retried, waiting at least the server's `Retry-After` plus a jittered
  exponential backoff (tenacity), until the call's deadline; then the last error is raised;
- every other refusal is raised at once as the exception of its error code (errors.py);
- settling a hold (capture, release) and putting settings are safe to repeat by the API's rules
  (a repeated settlement is answered with the first one), so they are retried the same way;
- the deployed function gets a Google ID token for its URL; the local run gets none (auth.py).
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Optional, Union, overload

import httpx
from tenacity import (RetryCallState, Retrying, retry_if_exception, stop_before_delay,
                      wait_random_exponential)

from . import auth
from .errors import ConnectionFault, CreditsError, Unavailable, error_from
from .models import (Balance, BalanceAsOf, Hold, Page, PlacedHold, Preview, Refund, Settings, Settlement,
                     Spend, Transaction)

log = logging.getLogger("credits_client")

__version__ = "0.1.0"
# Faults below HTTP after which the request may or may not have reached the function: retried with
# the same key, which makes the second attempt answer the first one's outcome.
RETRYABLE_FAULTS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_UNSET: Any = object()


def route(method: str, path: str) -> Callable:
    """Marks a client method with the API route it calls (the tests match these to the OpenAPI document)."""

    def mark(function: Callable) -> Callable:
        function.route = (method, path)
        return function

    return mark


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (Unavailable, *RETRYABLE_FAULTS))


def _time_param(value: Union[datetime, str, None]) -> Optional[str]:
    return value.isoformat() if isinstance(value, datetime) else value


def _retry_after(response: httpx.Response) -> Optional[float]:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date (the API always sends seconds)


class CreditsClient:
    """A client of the credits API at `base_url` (the function's URL, or the local run's).

    `authenticate`: None decides from the URL (a local URL takes no token), True or False forces it.
    `deadline`: seconds a call may take, retries included. `timeout`: seconds for one attempt.
    """

    def __init__(self, base_url: str, *, authenticate: Optional[bool] = None, deadline: float = 30.0,
                 timeout: float = 10.0, fetch_id_token: Optional[Callable[[str], str]] = None,
                 transport: Optional[httpx.BaseTransport] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        if authenticate is None:
            authenticate = not auth.is_local(self.base_url)
        self._auth = auth.GoogleIdTokenAuth(self.base_url, fetch=fetch_id_token) if authenticate else None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, auth=self._auth, transport=transport,
                                  headers={"User-Agent": f"two-pool-credits-client/{__version__}"})
        self._backoff = wait_random_exponential(multiplier=0.1, max=5)

    def __enter__(self) -> "CreditsClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the routes ---------------------------------------------------------------------------

    @route("POST", "/spend")
    def spend(self, user_id: str, amount: int, *, description: Optional[str] = None,
              idempotency_key: Optional[str] = None) -> Spend:
        """Spend `amount` credits. Raises InsufficientCredits (with `balance`, `requested`) when short."""
        key = idempotency_key or uuid.uuid4().hex
        body = {"user_id": user_id, "amount": amount, "description": description, "idempotency_key": key}
        data, replayed = self._call("POST", "/spend", json=body)
        return Spend.from_json(data, key, replayed)

    @route("POST", "/spend")
    def preview_spend(self, user_id: str, amount: int, *, description: Optional[str] = None) -> Preview:
        """What `spend` would do, writing nothing (`dry_run`); InsufficientCredits as a spend would."""
        body = {"user_id": user_id, "amount": amount, "description": description, "dry_run": True}
        data, _ = self._call("POST", "/spend", json=body)
        return Preview.from_json(data)

    @overload
    def balance(self, user_id: str) -> Balance: ...

    @overload
    def balance(self, user_id: str, *, as_of: Union[datetime, str]) -> BalanceAsOf: ...

    @route("GET", "/balance/{user_id}")
    def balance(self, user_id, *, as_of=None):
        """The user's balance now, or with `as_of` (a time with a zone) the pools as they stood then."""
        params = {"as_of": _time_param(as_of)} if as_of is not None else None
        data, _ = self._call("GET", f"/balance/{self._id(user_id)}", params=params)
        return BalanceAsOf.from_json(data) if as_of is not None else Balance.from_json(data)

    @route("GET", "/transactions/{user_id}")
    def history_pages(self, user_id: str, *, types: Union[str, Iterable[str], None] = None,
                      pool: Optional[str] = None, since: Union[datetime, str, None] = None,
                      until: Union[datetime, str, None] = None, limit: Optional[int] = None) -> Iterator[Page]:
        """The user's records, newest first, one page (a `Page` of `Transaction`s) at a time."""
        params = {"type": types if isinstance(types, str) or types is None else ",".join(types), "pool": pool,
                  "since": _time_param(since), "until": _time_param(until), "limit": limit}
        for data in self._pages(f"/transactions/{self._id(user_id)}", params):
            yield Page([Transaction.from_json(t) for t in data["transactions"]], data["next_page_token"])

    @route("GET", "/transactions/{user_id}")
    def history(self, user_id: str, **filters: Any) -> Iterator[Transaction]:
        """Every record of the user, newest first, across pages (the filters of `history_pages`)."""
        for page in self.history_pages(user_id, **filters):
            yield from page.items

    @route("POST", "/refunds")
    def refund(self, user_id: str, spend_key: str, amount: Optional[int] = None, *,
               description: Optional[str] = None, idempotency_key: Optional[str] = None) -> Refund:
        """Give back `amount` (default: all that remains) of the spend made with key `spend_key`."""
        key = idempotency_key or uuid.uuid4().hex
        body = {"user_id": user_id, "spend_key": spend_key, "amount": amount, "description": description,
                "idempotency_key": key}
        data, replayed = self._call("POST", "/refunds", json=body)
        return Refund.from_json(data, key, replayed)

    @route("POST", "/holds")
    def place_hold(self, user_id: str, amount: int, *, hold_id: Optional[str] = None,
                   description: Optional[str] = None, expires_in: Optional[int] = None) -> PlacedHold:
        """Take `amount` now, to capture or release later (`hold` does both around a block)."""
        body = {"user_id": user_id, "amount": amount, "hold_id": hold_id or uuid.uuid4().hex,
                "description": description, "expires_in": expires_in}
        data, replayed = self._call("POST", "/holds", json=body)
        return PlacedHold.from_json(data, replayed)

    @route("POST", "/holds/{hold_id}/capture")
    def capture_hold(self, hold_id: str, amount: Optional[int] = None) -> Settlement:
        """Keep `amount` (default: all) of the hold; the rest goes back."""
        data, replayed = self._call("POST", f"/holds/{self._id(hold_id)}/capture",
                                    json={} if amount is None else {"amount": amount})
        return Settlement.from_json(data, replayed)

    @route("POST", "/holds/{hold_id}/release")
    def release_hold(self, hold_id: str) -> Settlement:
        """Give everything the hold took back."""
        data, replayed = self._call("POST", f"/holds/{self._id(hold_id)}/release", json={})
        return Settlement.from_json(data, replayed)

    @route("GET", "/holds/{hold_id}")
    def get_hold(self, hold_id: str) -> Hold:
        data, _ = self._call("GET", f"/holds/{self._id(hold_id)}")
        return Hold.from_json(data)

    @route("GET", "/holds")
    def hold_pages(self, user_id: str, *, status: Optional[str] = None,
                   limit: Optional[int] = None) -> Iterator[Page]:
        """The user's holds, newest first, a page at a time (`status`: held, captured, released, expired)."""
        for data in self._pages("/holds", {"user_id": user_id, "status": status, "limit": limit}):
            yield Page([Hold.from_json(h) for h in data["holds"]], data["next_page_token"])

    @route("GET", "/holds")
    def holds(self, user_id: str, **filters: Any) -> Iterator[Hold]:
        for page in self.hold_pages(user_id, **filters):
            yield from page.items

    @route("GET", "/users/{user_id}/settings")
    def settings(self, user_id: str) -> Settings:
        data, _ = self._call("GET", f"/users/{self._id(user_id)}/settings")
        return Settings.from_json(data)

    @route("PUT", "/users/{user_id}/settings")
    def update_settings(self, user_id: str, *, low_balance_threshold: Optional[int] = _UNSET,
                        auto_topup: Optional[dict] = _UNSET) -> Settings:
        """Change the settings given (None clears one); those left out stay as they are."""
        change = {name: value for name, value in
                  (("low_balance_threshold", low_balance_threshold), ("auto_topup", auto_topup))
                  if value is not _UNSET}
        data, _ = self._call("PUT", f"/users/{self._id(user_id)}/settings", json=change, drop_none=False)
        return Settings.from_json(data)

    @route("GET", "/openapi.json")
    def openapi(self) -> dict:
        """The server's OpenAPI document."""
        data, _ = self._call("GET", "/openapi.json")
        return data

    def hold(self, user_id: str, amount: int, **options: Any) -> "HoldScope":
        """A hold around a block: placed on entry, captured when the block ends (for
        `scope.capture_amount` if the block set it), released if the block raises."""
        return HoldScope(self, user_id, amount, options)

    # --- the machinery ------------------------------------------------------------------------

    @staticmethod
    def _id(value: str) -> str:
        # An id is one path segment: '?', '#', '%' and the like must reach the server as themselves.
        return quote(value, safe="")

    def _pages(self, path: str, params: dict) -> Iterator[dict]:
        token = None
        while True:
            data, _ = self._call("GET", path, params={**params, "page_token": token})
            yield data
            token = data.get("next_page_token")
            if not token:
                return

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        jitter = self._backoff(state)
        if isinstance(error, Unavailable) and error.retry_after is not None:
            return error.retry_after + jitter
        return jitter

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info("retrying in %.2f s after %s (attempt %d)", state.next_action.sleep if state.next_action else 0,
                 getattr(error, "code", None) or type(error).__name__, state.attempt_number + 1)

    def _call(self, method: str, path: str, *, json: Optional[dict] = None, params: Optional[dict] = None,
              drop_none: bool = True) -> tuple[Any, bool]:
        """One API call with retries; the JSON answer and whether it was an idempotent replay."""
        if json is not None and drop_none:
            json = {name: value for name, value in json.items() if value is not None}
        if params is not None:
            params = {name: value for name, value in params.items() if value is not None}
        retrying = Retrying(retry=retry_if_exception(_retryable), wait=self._wait,
                            stop=stop_before_delay(self.deadline), before_sleep=self._log_retry, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, path, json, params)
        except RETRYABLE_FAULTS as fault:
            raise ConnectionFault(f"{method} {path}: {type(fault).__name__}: {fault}") from fault
        raise AssertionError("unreachable: tenacity returns or raises")

    def _once(self, method: str, path: str, json: Optional[dict], params: Optional[dict]) -> tuple[Any, bool]:
        response = self._http.request(method, path, json=json, params=params)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if body is None:
                raise error_from(response.status_code, None)
            return body, response.headers.get("Idempotent-Replayed") == "true"
        raise error_from(response.status_code, body, _retry_after(response))


class HoldScope:
    """`with client.hold(user, amount) as hold:` — see `CreditsClient.hold`.

    Inside the block: `hold.hold_id`, `hold.placed` (the PlacedHold); set `hold.capture_amount` to
    keep less than the held amount. After it: `hold.settlement` (the capture or the release)."""

    def __init__(self, client: CreditsClient, user_id: str, amount: int, options: dict) -> None:
        self._client = client
        self.user_id = user_id
        self.amount = amount
        self._options = options
        self.capture_amount: Optional[int] = None
        self.placed: Optional[PlacedHold] = None
        self.settlement: Optional[Settlement] = None

    @property
    def hold_id(self) -> str:
        assert self.placed is not None, "the hold is placed when the with block starts"
        return self.placed.hold_id

    def __enter__(self) -> "HoldScope":
        self.placed = self._client.place_hold(self.user_id, self.amount, **self._options)
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is None:
            self.settlement = self._client.capture_hold(self.hold_id, self.capture_amount)
            return False
        try:
            self.settlement = self._client.release_hold(self.hold_id)
        except CreditsError as release_error:
            # The block's own error is the one to see; the hold expires on its own anyway.
            exc.add_note(f"releasing hold {self.hold_id} failed too: {release_error!r}; it expires on its own")
        return False
