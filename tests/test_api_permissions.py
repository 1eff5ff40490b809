"""Who may call which customers endpoint: the exact status for every caller.

API keys need the scope (``read`` for reads, ``manage`` to change consent); signed-in
people need the capability (``customers.view`` / ``customers.edit``, see orchestrator.roles).
"""

from __future__ import annotations

import pytest
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from customers.models import ConsentChange
from orchestrator.api_keys import HasScope
from orchestrator.roles import Role
from tests import api_factories as f

pytestmark = pytest.mark.django_db

CONSENT_CHANGE = {"channel": "sms", "category": "marketing", "status": "opted_out"}

ENDPOINTS = {
    "list": ("get", "/api/v1/customers"),
    "detail": ("get", "/api/v1/customers/perm-1"),
    "events": ("get", "/api/v1/customers/perm-1/events"),
    "messages": ("get", "/api/v1/customers/perm-1/messages"),
    "consent": ("get", "/api/v1/customers/perm-1/consent"),
    "consent_patch": ("patch", "/api/v1/customers/perm-1/consent"),
}
READS = ["list", "detail", "events", "messages", "consent"]

# caller → expected status for reads, for consent_patch
MATRIX = {
    "anonymous": (401, 401),
    "key:ingest": (403, 403),
    "key:read": (200, 403),
    "key:manage": (403, 200),
    "key:read+manage": (200, 200),
    "key:revoked": (401, 401),
    "user:no role": (403, 403),
    "user:Marketer": (200, 403),
    "user:Messaging team": (200, 200),
    "user:Admin": (200, 200),
    "user:superuser": (200, 200),
}

CASES = [
    pytest.param(caller, endpoint, codes[1] if endpoint == "consent_patch" else codes[0], id=f"{caller}-{endpoint}")
    for caller, codes in MATRIX.items()
    for endpoint in ENDPOINTS
]


@pytest.fixture
def client_as(make_api_key, make_user):
    def make(caller: str) -> APIClient:
        client = APIClient()
        kind, _, what = caller.partition(":")
        if kind == "key":
            scopes = ("read",) if what == "revoked" else tuple(what.split("+"))
            api_key, clear = make_api_key(scopes)
            if what == "revoked":
                from orchestrator.api_keys import do_revoke_api_key

                do_revoke_api_key(api_key)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
        elif kind == "user":
            if what == "superuser":
                user = make_user(None, username="root", superuser=True)
            else:
                user = make_user(None if what == "no role" else Role(what))
            client.force_login(user)
        return client

    return make


@pytest.mark.parametrize(("caller", "endpoint", "expected"), CASES)
def test_permission_matrix(client_as, caller, endpoint, expected):
    f.customer("perm-1")
    method, url = ENDPOINTS[endpoint]
    client = client_as(caller)
    if method == "patch":
        response = client.patch(url, CONSENT_CHANGE, format="json")
    else:
        response = client.get(url)
    assert response.status_code == expected, response.content
    if expected != 200:
        assert set(response.json()["error"]) == {"code", "message"}
    if endpoint == "consent_patch":
        assert ConsentChange.objects.exists() == (expected == 200)


def test_refusal_messages_say_what_is_missing(client_as):
    f.customer("perm-1")
    assert client_as("key:ingest").get("/api/v1/customers").json() == {
        "error": {"code": "permission_denied", "message": "This API key lacks the 'read' scope this endpoint needs."}
    }
    assert client_as("user:Marketer").patch(ENDPOINTS["consent_patch"][1], CONSENT_CHANGE, format="json").json() == {
        "error": {"code": "permission_denied", "message": "Your role does not allow customers.edit."}
    }
    anonymous = client_as("anonymous").get("/api/v1/customers")
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="chorus"'


def test_head_follows_get_on_views_that_serve_it(make_api_key):
    class Probe(APIView):
        permission_classes = [HasScope]
        required_scope = {"GET": "read"}
        required_capability = {"GET": "customers.view"}

        def get(self, request):
            return Response({})

    def head(scopes):
        _, clear = make_api_key(scopes)
        request = APIRequestFactory().head("/probe", HTTP_AUTHORIZATION=f"Bearer {clear}")
        return Probe.as_view()(request).status_code

    assert head(("read",)) == 200
    assert head(("ingest",)) == 403


def test_a_browser_session_needs_a_csrf_token_to_change_consent(make_user):
    f.customer("perm-1")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ADMIN))
    response = client.patch(ENDPOINTS["consent_patch"][1], CONSENT_CHANGE, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not ConsentChange.objects.exists()


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_405_for_known_callers_and_401_for_others(api_client, method):
    f.customer("perm-1")
    response = getattr(api_client, method)("/api/v1/customers/perm-1/consent")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert getattr(APIClient(), method)("/api/v1/customers/perm-1/consent").status_code == 401
