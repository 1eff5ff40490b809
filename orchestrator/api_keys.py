"""API keys: creation, hashing, authentication and the per-key rate limit.

A key looks like ``chorus_<prefix>.<secret>``. The prefix finds the row; the secret is
compared against its SHA-256 (the secret has 256 bits of entropy, so a slow password
hash would add nothing but latency on every ingestion request).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from orchestrator import api_usage as usage
from orchestrator.models import ApiKey, ApiScope

KEY_PREFIX = "chorus_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    clear_key: str


def validate_scopes(scopes: list[str]) -> list[str]:
    valid = set(ApiScope.values)
    unknown = [s for s in scopes if s not in valid]
    if unknown:
        raise ValueError(f"scopes: unknown scope(s) {', '.join(unknown)}; choose from {', '.join(sorted(valid))}")
    if not scopes:
        raise ValueError("scopes: at least one scope is required")
    return sorted(set(scopes))


def validate_rate_limit(rate_limit_per_minute: int | None) -> int | None:
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise ValueError("rate_limit_per_minute: must be at least 1 (leave it unset for the default)")
    return rate_limit_per_minute


def do_create_api_key(
    name: str,
    scopes: list[str],
    *,
    source: str = "",
    rate_limit_per_minute: int | None = None,
    created_by=None,
) -> CreatedKey:
    """Create a key; only its hash is stored, the clear key exists only in the result.

    Raises ValueError naming the field for an empty or taken name, a bad scope or limit.
    """
    name = name.strip()
    if not name:
        raise ValueError("name: a name is required")
    scopes = validate_scopes(scopes)
    validate_rate_limit(rate_limit_per_minute)
    for _ in range(3):  # a new random prefix if one ever collides
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    name=name,
                    source=source.strip() or name,
                    prefix=prefix,
                    hashed_secret=_hash(secret),
                    scopes=scopes,
                    rate_limit_per_minute=rate_limit_per_minute,
                    created_by=created_by,
                )
        except IntegrityError:
            if ApiKey.objects.filter(name=name).exists():
                raise ValueError(f"name: an API key named {name!r} already exists") from None
            continue
        return CreatedKey(api_key=api_key, clear_key=f"{KEY_PREFIX}{prefix}.{secret}")
    raise RuntimeError("could not draw an unused API key prefix in 3 attempts")


def do_revoke_api_key(api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    _KEY_CACHE.pop(api_key.prefix, None)
    usage.mark_revoked(api_key.prefix)


# Keys found recently, per process: authentication is on every ingestion request, and a
# database round trip per request for a row that almost never changes is most of its cost.
# Revocation still takes effect at once: the revoking process drops its entry, and other
# processes see the revocation flag that comes back with the rate-limit counter.
KEY_CACHE_SECONDS = 30.0
_KEY_CACHE: dict[str, tuple[float, ApiKey]] = {}


def find_key(clear_key: str) -> ApiKey | None:
    if not clear_key.startswith(KEY_PREFIX) or "." not in clear_key:
        return None
    prefix, _, secret = clear_key[len(KEY_PREFIX) :].partition(".")
    now = time.monotonic()
    cached = _KEY_CACHE.get(prefix)
    if cached is not None and cached[0] > now:
        api_key = cached[1]
    else:
        api_key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
        if api_key is None:
            _KEY_CACHE.pop(prefix, None)
            return None
        _KEY_CACHE[prefix] = (now + KEY_CACHE_SECONDS, api_key)
    if not hmac.compare_digest(api_key.hashed_secret, _hash(secret)):
        return None
    return api_key


def forget_cached_keys() -> None:
    _KEY_CACHE.clear()
    _TOUCHED.clear()


class RateLimited(exceptions.Throttled):
    default_detail = "Rate limit exceeded for this API key."


def check_rate_limit(api_key: ApiKey) -> None:
    """Fixed one-minute windows counted in the shared store (Redis in production).

    Raises AuthenticationFailed when another process has revoked the key since this one
    cached it, and RateLimited (429 with Retry-After) over the key's limit.
    """
    limit = api_key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
    now = time.time()
    count, revoked = usage.hit(api_key.pk, api_key.prefix, int(now // 60))
    if revoked:
        _KEY_CACHE.pop(api_key.prefix, None)
        raise exceptions.AuthenticationFailed("Authorization: unknown or revoked API key.")
    if count > limit:
        # Seconds until the next window opens, rounded up so a client never retries early.
        raise RateLimited(wait=max(1, math.ceil(60 - now % 60)))


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer chorus_…``. Sets request.user to None and request.auth to the ApiKey."""

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword or not token.strip():
            raise exceptions.AuthenticationFailed("Authorization: expected 'Bearer <api key>'.")
        api_key = find_key(token.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Authorization: unknown or revoked API key.")
        check_rate_limit(api_key)
        _touch(api_key)
        return (ApiKeyUser(api_key), api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="chorus"'


# When this process last wrote each key's last_used_at (monotonic seconds).
_TOUCHED: dict[int, float] = {}
TOUCH_EVERY_SECONDS = 60.0


def _touch(api_key: ApiKey) -> None:
    """Record last use at most once a minute per key and process: no write per request."""
    now = time.monotonic()
    if now - _TOUCHED.get(api_key.pk, -TOUCH_EVERY_SECONDS) >= TOUCH_EVERY_SECONDS:
        _TOUCHED[api_key.pk] = now
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


class ApiKeyUser:
    """Stands in for request.user when a request is authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.pk = None
        self.id = None
        self.username = f"apikey:{api_key.name}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return False


def request_source(request) -> str:
    """The event source for a request: the key's source label, or 'web' for a signed-in user."""
    return request.auth.source if isinstance(request.auth, ApiKey) else "web"


class HasScope(BasePermission):
    """Allows an API key holding ``required_scope``, or a signed-in user with ``required_capability``.

    Views set ``required_scope`` and ``required_capability`` (see orchestrator.roles), each
    either one value or a dict keyed by HTTP method (``"*"`` for any other method); HEAD
    follows GET. Function views get them from ``api_access`` above ``@api_view``.
    """

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        from orchestrator.roles import has_capability

        if request.method.lower() not in getattr(view, "http_method_names", ()):
            # Let the view answer 405 to a known caller, rather than a misleading 403.
            return bool(request.user and request.user.is_authenticated)
        if isinstance(request.auth, ApiKey):
            scope = _for_method(getattr(view, "required_scope", None), request.method)
            self.message = f"This API key lacks the {scope!r} scope this endpoint needs."
            return bool(scope) and request.auth.has_scope(scope)
        user = request.user
        capability = _for_method(getattr(view, "required_capability", None), request.method)
        self.message = (
            f"Your role does not allow {capability}."
            if capability
            else "This endpoint takes an API key (Authorization: Bearer …), not a signed-in session."
        )
        return bool(user and user.is_authenticated and capability and has_capability(user, capability))


def _for_method(requirement, method: str):
    if not isinstance(requirement, dict):
        return requirement
    if method == "HEAD" and "HEAD" not in requirement:
        method = "GET"
    return requirement.get(method, requirement.get("*"))


def api_access(*, scope: str | dict[str, str], capability: str | dict[str, str]):
    """Decorator placed above ``@api_view``: who may call a function view.

    ``api_view`` copies only DRF's own policy attributes onto the class it builds, so the
    requirements are set on that class here.
    """

    def decorate(view):
        view.cls.required_scope = scope
        view.cls.required_capability = capability
        view.cls.permission_classes = [HasScope]
        return view

    return decorate
