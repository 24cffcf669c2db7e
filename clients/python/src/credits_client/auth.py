"""Authentication: a Google-signed ID token for the function's URL, or none for the local run.

Rules:
- the deployed function only runs for a caller with roles/run.invoker: every request carries
  `Authorization: Bearer <ID token>` whose audience is the function's URL, fetched with google-auth's
  `fetch_id_token` (a service account's credentials, the metadata server on Google Cloud, or
  GOOGLE_APPLICATION_CREDENTIALS elsewhere);
- the token is fetched once and reused until shortly before it expires (its `exp` claim), not once
  per call;
- a base URL on 127.0.0.1, localhost or ::1 is the local run (./scripts/run-local.sh), which has
  no authentication: nothing is fetched or sent.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generator, Optional
from urllib.parse import urlsplit

import httpx

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Fetch a new token this long before the current one expires, so none expires in flight.
REFRESH_MARGIN_S = 300.0


def is_local(base_url: str) -> bool:
    """Whether `base_url` is the local run, which takes no token."""
    return (urlsplit(base_url).hostname or "") in LOCAL_HOSTS


def _fetch_google_id_token(audience: str) -> str:
    # Imported when first needed: the local run never loads google-auth's transport.
    import google.auth.transport.requests
    import google.oauth2.id_token

    return google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)


def token_expiry(token: str) -> float:
    """The `exp` claim (epoch seconds) of a JWT, read without verifying it (the server verifies)."""
    from google.auth import jwt

    return float(jwt.decode(token, verify=False)["exp"])


class GoogleIdTokenAuth(httpx.Auth):
    """httpx authentication with a cached Google ID token whose audience is the function's URL."""

    def __init__(self, audience: str, fetch: Optional[Callable[[str], str]] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.audience = audience
        self._fetch = fetch or _fetch_google_id_token
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN_S:
                self._token = self._fetch(self.audience)
                self._expires_at = token_expiry(self._token)
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request
