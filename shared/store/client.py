"""The Firestore client, its deadlines, and the one mapping of Firestore faults.

Rules enforced here:
- the client is built on first use (never at import) and shared by the whole instance;
- every call carries the one deadline (`deadline()`) and no hidden retries (`retry=None`): the
  store decides;
- a fault that may heal becomes `Unavailable` (a 503 or a redelivery), logged once; a lost
  race (a precondition or a create-only write refused) is told apart from it; anything else is a
  bug and propagates.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from typing import Iterator

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore

from ..common import log, settings
from ..common.errors import ConfigurationError, Unavailable

RPC_TIMEOUT_S = 10.0

# A lost race: another writer changed the user document or created the marker first.
RACE_LOST = (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted, gexc.Conflict)
# Faults that may heal on their own; anything else is a bug and propagates.
TRANSIENT = (
    gexc.Cancelled,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Unknown,
    gexc.TooManyRequests,
    gexc.RetryError,
    gexc.ResourceExhausted,
    gexc.BadGateway,
    gexc.GatewayTimeout,
)


@settings.cached
def client() -> firestore.Client:
    """The Firestore client of this instance."""
    try:
        return firestore.Client(project=settings.project())
    except auth_exceptions.DefaultCredentialsError:
        # No emulator named and no credentials found: say what to set, not where google-auth looked.
        raise ConfigurationError(
            "no Firestore to use: set FIRESTORE_EMULATOR_HOST (and GOOGLE_CLOUD_PROJECT) for the emulator, "
            "or GOOGLE_CLOUD_PROJECT with application-default credentials"
        ) from None


def deadline(scale: float = 1.0) -> float:
    """The deadline of a Firestore call: one setting, `RPC_TIMEOUT_S`, read at each call (a scan of
    many documents gets a multiple of it)."""
    return RPC_TIMEOUT_S * scale


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def unavailable(exc: Exception, operation: str) -> Unavailable:
    """The `Unavailable` a transient fault becomes, logged with the operation it broke."""
    log.warning("firestore unavailable", operation=operation, error=type(exc).__name__, detail=str(exc)[:300])
    return Unavailable(f"Firestore is unavailable ({type(exc).__name__}); retry later")


@contextlib.contextmanager
def faults(operation: str) -> Iterator[None]:
    """Turn a Firestore fault that may heal into `Unavailable`; anything else propagates."""
    try:
        yield
    except TRANSIENT as exc:
        raise unavailable(exc, operation) from exc
