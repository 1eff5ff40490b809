"""Provider secrets encrypted at rest with MultiFernet keys from ``CHORUS_SECRET_KEYS``.

``CHORUS_SECRET_KEYS`` is a comma-separated list of Fernet keys, newest first
(``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``).
The newest key encrypts; every key listed decrypts, so rotating is: put the new key in
front, run ``./chorus manage rotate_provider_keys`` (re-encrypts every row under it),
then drop the old key.

Unset in development, a key derived from ``SECRET_KEY`` is used: for development only,
since it ties the secrets to a value that may be shared or changed for other reasons.
Unset with ``CHORUS_PRODUCTION`` on, start-up of anything that touches secrets fails.

The keys are read on every call, not at import, so a rotation needs no code reload and
tests can set the variable.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import env_list

VARIABLE = "CHORUS_SECRET_KEYS"


def _development_key() -> bytes:
    digest = hashlib.sha256(b"chorus provider secrets (development only):" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet(key: str, position: int) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        # Never echo the value: it is (or is meant to be) a secret.
        raise ImproperlyConfigured(
            f"{VARIABLE}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def multi_fernet() -> MultiFernet:
    """The configured keys, newest first; fails loudly, naming the variable."""
    keys = env_list(VARIABLE)
    if keys:
        return MultiFernet([_fernet(key, n) for n, key in enumerate(keys, start=1)])
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured(f"{VARIABLE}: required when CHORUS_PRODUCTION is set (comma-separated Fernet keys)")
    return MultiFernet([Fernet(_development_key())])


def encrypt_secrets(secrets: dict[str, str]) -> str:
    """The secrets as one token under the newest key; "" for none (nothing to protect)."""
    if not secrets:
        return ""
    payload = json.dumps(secrets, sort_keys=True, separators=(",", ":")).encode()
    return multi_fernet().encrypt(payload).decode()


def decrypt_secrets(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        payload = multi_fernet().decrypt(token.encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            f"{VARIABLE}: no configured key decrypts the stored provider secrets (was a key dropped before "
            "rotate_provider_keys ran?)"
        ) from None
    return json.loads(payload)


def rotate_token(token: str) -> str:
    """The same secrets re-encrypted under the newest key (unchanged when empty)."""
    if not token:
        return token
    try:
        return multi_fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(f"{VARIABLE}: no configured key decrypts a stored provider secret") from None
