"""OpenAPI extensions: how drf-spectacular documents Chorus's own API machinery.

drf-spectacular finds extensions by import: the API's view modules import this one (read.py
through its serializers), so the extensions are registered once the URLconf is loaded,
before any schema is generated. ``orchestrator.api_keys`` must not import it: DRF imports
the authentication classes while ``rest_framework.views`` is still loading.
"""

from __future__ import annotations

from django.db import models
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "orchestrator.api_keys.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "chorus_<prefix>.<secret>",
            "description": (
                "An API key, sent as `Authorization: Bearer chorus_<prefix>.<secret>`. "
                "Create one with `manage.py create_api_key NAME --scopes ingest,read`. "
                "Scopes: `ingest` (identify, track, page, screen, batch), `read` (customers, "
                "events, messages), `manage` (consent changes, journeys: authoring, publishing, trigger, simulate). Each key has a per-minute rate "
                "limit; over it the API answers 429 with a Retry-After header."
            ),
        }


class EnumChoiceField(serializers.ChoiceField):
    """A ChoiceField over a TextChoices class, documented as one named enum component.

    drf-spectacular names enums after the field (``status``), and different choice sets
    under one field name (consent status, message status) collide with warnings. Naming
    the component after the choices class (``ConsentStatusEnum``) is stable and shared.
    """

    def __init__(self, choices_class: type[models.TextChoices], **kwargs):
        self.choices_class = choices_class
        super().__init__(choices=choices_class.choices, **kwargs)


class EnumChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = EnumChoiceField

    def map_serializer_field(self, auto_schema, direction):
        choices_class = self.target.choices_class
        component = ResolvedComponent(
            name=f"{choices_class.__name__}Enum",
            type=ResolvedComponent.SCHEMA,
            object=choices_class,
            schema={
                "type": "string",
                "enum": list(choices_class.values),
                "description": "\n".join(f"* `{value}` - {label}" for value, label in choices_class.choices),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class WholeBodyPatchSchema(AutoSchema):
    """For a PATCH that applies changes rather than partially updating a resource.

    drf-spectacular documents every PATCH body as partial (all fields optional, a
    ``Patched…`` component); here each field of the body is required, so say so.
    """

    def _get_request_for_media_type(self, serializer, direction="request"):
        if self.method != "PATCH":
            return super()._get_request_for_media_type(serializer, direction)
        self.method = "POST"
        try:
            return super()._get_request_for_media_type(serializer, direction)
        finally:
            self.method = "PATCH"


def whole_body_patch(view):
    """Place between ``@extend_schema`` and ``@api_view``: see WholeBodyPatchSchema.

    ``extend_schema`` builds on the schema class it finds in ``view.cls.kwargs`` (where
    an earlier annotation of an ``@api_view`` leaves it), so stacked annotations keep it.
    """
    view.cls.kwargs = {"schema": WholeBodyPatchSchema}
    return view
