"""People and roles: one matrix of who may do what, enforced in every view and endpoint.

Roles are Django groups (created by a data migration). A capability is a string; the
matrix below is the only place that says which roles hold it. Superusers hold all.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


class Role(StrEnum):
    MARKETER = "Marketer"
    MESSAGING = "Messaging team"
    ADMIN = "Admin"


class Capability(StrEnum):
    VIEW_CUSTOMERS = "customers.view"
    EDIT_CUSTOMERS = "customers.edit"  # consent changes, erasure
    VIEW_JOURNEYS = "journeys.view"
    EDIT_JOURNEYS = "journeys.edit"  # build and launch
    VIEW_DASHBOARDS = "dashboards.view"
    MANAGE_CREDENTIALS = "admin.credentials"
    MANAGE_POLICY = "admin.policy"
    MANAGE_API_KEYS = "admin.api_keys"
    USE_ADMIN = "admin.site"


MATRIX: dict[Role, frozenset[Capability]] = {
    Role.MARKETER: frozenset(
        {Capability.VIEW_CUSTOMERS, Capability.VIEW_JOURNEYS, Capability.EDIT_JOURNEYS}
    ),
    Role.MESSAGING: frozenset(
        {
            Capability.VIEW_CUSTOMERS,
            Capability.EDIT_CUSTOMERS,
            Capability.VIEW_JOURNEYS,
            Capability.VIEW_DASHBOARDS,
        }
    ),
    Role.ADMIN: frozenset(Capability),
}


def roles_of(user) -> set[Role]:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "pk", None):
        return set()
    cached = getattr(user, "_chorus_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = {role for role in Role if role.value in names}
        user._chorus_roles = cached
    return cached


def capabilities_of(user) -> frozenset[Capability]:
    if getattr(user, "is_superuser", False) and getattr(user, "is_active", False):
        return frozenset(Capability)
    caps: set[Capability] = set()
    for role in roles_of(user):
        caps |= MATRIX[role]
    return frozenset(caps)


def has_capability(user, capability: Capability | str) -> bool:
    return Capability(capability) in capabilities_of(user)


def require_capability(capability: Capability) -> Callable:
    """View decorator: login required, then the capability, else 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_capability(request.user, capability):
                raise PermissionDenied(f"Your role does not allow {capability.value}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def roles_context(request) -> dict:
    """Template context: ``can`` maps capability names (dots as underscores) to booleans."""
    user = getattr(request, "user", None)
    caps = capabilities_of(user) if user is not None else frozenset()
    return {
        "can": {cap.name.lower(): cap in caps for cap in Capability},
        "user_roles": sorted(r.value for r in roles_of(user)) if user is not None else [],
    }
