"""What an adapter asks the admin for: its option fields (plain) and secret fields (encrypted).

An adapter declares ``option_fields`` and ``secret_fields`` as tuples of ProviderField;
the admin builds its form from them (secrets as write-only inputs). A bare name, a
``(name, label)`` / ``(name, label, help_text)`` tuple or a mapping with those keys is
read too, so an adapter may stay terse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProviderField:
    name: str  # the key in ProviderConfigValues.options or .secrets
    label: str = ""
    help_text: str = ""
    required: bool = False
    kind: str = "text"  # options only: "text", "url", "email", "int", "float" or "bool" (stored "true"/"false")


def _field(declared: Any) -> ProviderField:
    if isinstance(declared, ProviderField):
        return declared
    if isinstance(declared, str):
        return ProviderField(declared)
    if isinstance(declared, Mapping):
        return ProviderField(**declared)
    if isinstance(declared, tuple | list):
        return ProviderField(*declared)
    raise TypeError(f"not a provider field declaration: {declared!r}")


def declared_fields(adapter: type, attribute: str) -> list[ProviderField]:
    """The adapter's ``option_fields`` or ``secret_fields``, each as a ProviderField with a label."""
    fields = [_field(declared) for declared in getattr(adapter, attribute, ()) or ()]
    return [f if f.label else ProviderField(f.name, f.name.replace("_", " ").capitalize(), f.help_text, f.required, f.kind)
            for f in fields]
