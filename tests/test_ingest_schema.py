"""The OpenAPI schema documents the ingestion request bodies, limits and error shape."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

OPERATIONS = {
    "/api/v1/identify": "IdentifyRequest",
    "/api/v1/track": "TrackRequest",
    "/api/v1/page": "PageRequest",
    "/api/v1/screen": "ScreenRequest",
    "/api/v1/batch": "BatchRequest",
}


@pytest.fixture
def schema(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(("path", "request_schema"), OPERATIONS.items())
def test_each_endpoint_documents_its_body_errors_and_key(schema, path, request_schema):
    operation = schema["paths"][path]["post"]

    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{request_schema}"}
    for status in ("400", "401", "403", "413", "429"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    assert operation["security"] == [{"ApiKey": []}]
    assert "string values ≤ 8,192 characters" in operation["description"]


def test_error_shape_names_fields_and_reasons(schema):
    components = schema["components"]["schemas"]

    assert set(components["ErrorResponse"]["properties"]) == {"error"}
    assert set(components["ErrorDetail"]["properties"]) == {"code", "message", "fields"}
    assert set(components["FieldError"]["properties"]) == {"field", "reason"}


def test_batch_response_reports_received_stored_duplicates_and_ignored(schema):
    response = schema["paths"]["/api/v1/batch"]["post"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchResponse"
    }
    assert set(schema["components"]["schemas"]["BatchResponse"]["properties"]) == {
        "success",
        "received",
        "stored",
        "duplicates",
        "ignored",
    }
