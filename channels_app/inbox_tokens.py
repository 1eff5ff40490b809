"""Customer-scoped inbox tokens: what an app shows to read one customer's in-app inbox.

The customer's own backend mints a token with its API key (``POST /api/v1/inbox/<id>/token``)
and hands it to the app, which sends it as ``Authorization: Bearer <token>`` (HTTP) or
``?token=`` (the WebSocket, where browsers cannot set headers). An API key never reaches
the app: a leaked token reads one customer's inbox for at most ``MAX_AGE``.

The token is the customer's external id signed with ``SECRET_KEY`` (a TimestampSigner with
its own salt, so no other signed value of Chorus is accepted as one). Keys rotate with
``SECRET_KEY_FALLBACKS``: tokens signed with an old key keep working until they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core import signing

SALT = "chorus.inbox.token"
MAX_AGE = timedelta(hours=24)


class InboxTokenError(Exception):
    """The token is missing, forged, expired, or names another customer. ``status``: 401 or 403."""

    def __init__(self, reason: str, *, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class InboxToken:
    token: str
    expires_in: int  # seconds


def _signer() -> signing.TimestampSigner:
    # TimestampSigner reads SECRET_KEY and SECRET_KEY_FALLBACKS at construction: build one per call.
    return signing.TimestampSigner(salt=SALT)


def mint_inbox_token(external_id: str) -> InboxToken:
    return InboxToken(token=_signer().sign(external_id), expires_in=int(MAX_AGE.total_seconds()))


def check_inbox_token(token: str, external_id: str) -> None:
    """Raise InboxTokenError unless ``token`` is a valid, unexpired token for ``external_id``."""
    if not token:
        raise InboxTokenError("No inbox token: send 'Authorization: Bearer <inbox token>'.")
    try:
        owner = _signer().unsign(token, max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise InboxTokenError("The inbox token has expired: ask your backend for a new one.") from None
    except signing.BadSignature:
        raise InboxTokenError("The inbox token is not valid.") from None
    if owner != external_id:
        raise InboxTokenError("The inbox token belongs to another customer.", status=403)


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or "" when there is none."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
