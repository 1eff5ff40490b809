"""The OpenAPI schema and the vendored Swagger UI."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(APIClient().get("/api/schema/").content)


def test_schema_generates_valid_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning or error into a failure.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"),
        stdout=StringIO(), stderr=StringIO(),
    )
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.")


def test_schema_documents_the_bearer_scheme_on_every_customers_operation(schema):
    assert schema["components"]["securitySchemes"]["ApiKey"] | {"description": None} == {
        "type": "http", "scheme": "bearer", "bearerFormat": "chorus_<prefix>.<secret>", "description": None,
    }
    for path in ("/api/v1/customers", "/api/v1/customers/{external_id}/events"):
        assert {"ApiKey": []} in schema["paths"][path]["get"]["security"]


def test_schema_lists_the_read_endpoints_with_their_parameters(schema):
    paths = schema["paths"]
    assert set(paths) >= {
        "/api/v1/customers",
        "/api/v1/customers/{external_id}",
        "/api/v1/customers/{external_id}/events",
        "/api/v1/customers/{external_id}/messages",
        "/api/v1/customers/{external_id}/consent",
    }

    def params(path):
        return {p["name"] for p in paths[path]["get"]["parameters"]}

    assert params("/api/v1/customers") == {
        "q", "timezone", "seen_since", "seen_before", "has_channel", "consent", "ordering", "limit", "offset",
    }
    assert params("/api/v1/customers/{external_id}/events") == {"external_id", "name", "since", "until", "limit", "offset"}
    assert params("/api/v1/customers/{external_id}/messages") == {
        "external_id", "channel", "status", "since", "until", "limit", "offset",
    }
    ok = paths["/api/v1/customers"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PaginatedCustomerList"}
    assert set(paths["/api/v1/customers/{external_id}"]["get"]["responses"]) == {"200", "401", "403", "404", "429"}


def test_consent_patch_body_is_one_change_or_a_list_of_whole_changes(schema):
    body = schema["paths"]["/api/v1/customers/{external_id}/consent"]["patch"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ConsentPatch"}
    components = schema["components"]["schemas"]
    assert components["ConsentPatch"]["oneOf"] == [
        {"$ref": "#/components/schemas/ConsentChange"},
        {"type": "array", "items": {"$ref": "#/components/schemas/ConsentChange"}},
    ]
    assert components["ConsentChange"]["required"] == ["category", "channel", "status"]
    assert components["ConsentStatusEnum"]["enum"] == ["opted_in", "opted_out", "unsubscribed", "bounced", "complained", "stopped"]


def test_contact_points_in_the_schema_have_no_keys(schema):
    assert "keys" not in schema["components"]["schemas"]["ContactPoint"]["properties"]


def test_swagger_ui_is_served_from_local_static_files_only(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', html)
    assert urls, html
    assert all(url.startswith("/static/drf_spectacular_sidecar/") for url in urls), urls
    assert not re.search(r"https?://|//cdn", html)
    assert '"/api/schema/"' in html
    client = APIClient()
    assert {url: client.get(url).status_code for url in urls} == dict.fromkeys(urls, 200)
