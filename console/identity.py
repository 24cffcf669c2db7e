"""Who is signed in to the support console: from Identity-Aware Proxy, or the local sign-in.

Rules enforced here:
- in Google Cloud the console is reachable only through the load balancer whose backend IAP
  guards (`terraform/console.tf`: ingress internal-and-load-balancer); IAP signs every request it
  lets through with `X-Goog-IAP-JWT-Assertion` (ES256) and names the person in
  `X-Goog-Authenticated-User-Email` (`accounts.google.com:alice@example.com`);
- with `CONSOLE_IAP_AUDIENCE` set, the assertion is verified (signature against IAP's public
  keys, audience, issuer `https://cloud.google.com/iap`, expiry) and must name the same email as
  the header; a request that fails any check has no actor. Without the audience only the header
  is read, which is safe only behind IAP (documented in docs/how-to/use-the-support-console.md);
- the keys are fetched from IAP's key URL once per instance and again when a token names a key
  not among them; verification itself is a pure function of the token, keys and audience;
- the development sign-in names the actor and role in the signed session cookie; it exists
  only when `CONSOLE_DEV_SIGN_IN=1` (`config`), never in Google Cloud.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass
from typing import Mapping, Optional

IAP_EMAIL_HEADER = "X-Goog-Authenticated-User-Email"
IAP_ASSERTION_HEADER = "X-Goog-IAP-JWT-Assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key"
MAX_EMAIL = 254


@dataclass(frozen=True)
class Actor:
    email: str
    role: Optional[str]


def email_of_header(value: Optional[str]) -> Optional[str]:
    """`accounts.google.com:alice@example.com` (or a bare email) as `alice@example.com`."""
    if not value:
        return None
    email = value.split(":", 1)[1] if ":" in value else value
    email = email.strip().lower()
    if not email or len(email) > MAX_EMAIL or "@" not in email:
        return None
    return email


def verify_assertion(token: str, audience: str, keys: Mapping[str, str]) -> Optional[str]:
    """The email an IAP assertion names, if its signature, audience, issuer and times hold; else None."""
    from google.auth import exceptions, jwt

    try:
        claims = jwt.decode(token, certs=dict(keys), audience=audience, clock_skew_in_seconds=30)
    except (exceptions.GoogleAuthError, ValueError):
        return None
    if claims.get("iss") != IAP_ISSUER:
        return None
    email = claims.get("email")
    return email.strip().lower() if isinstance(email, str) and email.strip() else None


_keys: dict[str, str] = {}
_keys_lock = threading.Lock()


def _fetch_keys() -> dict[str, str]:
    with urllib.request.urlopen(IAP_KEYS_URL, timeout=5) as response:  # noqa: S310 - a fixed https URL
        return dict(json.loads(response.read()))


def iap_keys(key_id: Optional[str]) -> dict[str, str]:
    """IAP's public keys by key id; fetched again when `key_id` is not among those held."""
    with _keys_lock:
        if key_id is None or key_id not in _keys:
            try:
                _keys.update(_fetch_keys())
            except (OSError, ValueError):
                pass  # keep what is held; a token under an unknown key then fails verification
        return dict(_keys)


def _key_id(token: str) -> Optional[str]:
    from google.auth import jwt

    try:
        return jwt.decode_header(token).get("kid")
    except (ValueError, TypeError):
        return None


def iap_email(headers: Mapping[str, str], audience: Optional[str]) -> Optional[str]:
    """The signed-in person's email from IAP's headers (verified when `audience` is set), or None."""
    email = email_of_header(headers.get(IAP_EMAIL_HEADER))
    if email is None or audience is None:
        return email
    token = headers.get(IAP_ASSERTION_HEADER)
    if not token:
        return None
    verified = verify_assertion(token, audience, iap_keys(_key_id(token)))
    return email if verified == email else None
