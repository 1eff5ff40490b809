"""Reading and changing a customer's consent through the API (customers.consent underneath)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from customers.models import Consent, ConsentChange, SuppressedIdentifier, hash_identifier
from orchestrator.roles import Role
from tests import api_factories as f
from tests.api_factories import T0

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/ana-1/consent"


@pytest.fixture
def ana(db):
    return f.customer("ana-1", email="ana@example.com", phone="+14155550101")


def consent_rows(customer) -> list[tuple[str, str, str, str]]:
    return list(Consent.objects.filter(customer=customer).values_list("channel", "category", "status", "source"))


def statuses(body) -> dict[tuple[str, str], str | None]:
    return {(c["channel"], c["category"]): c["status"] for c in body["consent"]}


def test_get_shows_every_pair_and_the_history_newest_first(api_client, ana):
    from customers.consent import do_set_consent

    do_set_consent(ana, "email", "marketing", "opted_in", source="signup form", at=T0)
    do_set_consent(ana, "email", "marketing", "unsubscribed", source="unsubscribe link", at=T0 + timedelta(days=1))

    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] == "ana-1"
    assert len(body["consent"]) == 8
    assert statuses(body)[("email", "marketing")] == "unsubscribed"
    assert [v for k, v in statuses(body).items() if k != ("email", "marketing")] == [None] * 7
    assert body["history"] == [
        {"channel": "email", "category": "marketing", "previous_status": "opted_in", "status": "unsubscribed",
         "source": "unsubscribe link", "actor": None, "changed_at": "2026-11-02T12:00:00Z"},
        {"channel": "email", "category": "marketing", "previous_status": None, "status": "opted_in",
         "source": "signup form", "actor": None, "changed_at": "2026-11-01T12:00:00Z"},
    ]


def test_history_is_capped_at_fifty(api_client, ana):
    from customers.consent import do_set_consent

    for i in range(30):
        do_set_consent(ana, "sms", "marketing", "opted_in", source="s", at=T0 + timedelta(minutes=2 * i))
        do_set_consent(ana, "sms", "marketing", "opted_out", source="s", at=T0 + timedelta(minutes=2 * i + 1))
    history = api_client.get(URL).json()["history"]
    assert len(history) == 50
    assert history[0]["changed_at"] == "2026-11-01T12:59:00Z"


def test_patch_one_change_goes_through_the_consent_service(api_client, ana):
    response = api_client.patch(
        URL, {"channel": "sms", "category": "marketing", "status": "opted_out", "source": "call centre"}, format="json"
    )
    assert response.status_code == 200
    assert statuses(response.json())[("sms", "marketing")] == "opted_out"
    assert consent_rows(ana) == [("sms", "marketing", "opted_out", "call centre")]
    change = ConsentChange.objects.get(customer=ana)
    assert (change.previous_status, change.status, change.source, change.actor) == ("", "opted_out", "call centre", None)
    # The service also keeps the suppression list in step.
    assert SuppressedIdentifier.objects.filter(identifier_hash=hash_identifier("phone", "+14155550101"), channel="sms").exists()
    assert response.json()["history"][0]["source"] == "call centre"


def test_patch_without_source_uses_the_keys_source_label(make_api_key, ana):
    _, clear = make_api_key(("manage",), name="crm", source="crm-sync")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    response = client.patch(URL, {"channel": "email", "category": "transactional", "status": "opted_in"}, format="json")
    assert response.status_code == 200
    assert consent_rows(ana) == [("email", "transactional", "opted_in", "crm-sync")]


def test_patch_by_a_person_records_them_as_the_actor(make_user, ana):
    user = make_user(Role.MESSAGING)
    client = APIClient()
    client.force_login(user)
    response = client.patch(URL, {"channel": "push", "category": "marketing", "status": "opted_out"}, format="json")
    assert response.status_code == 200
    change = ConsentChange.objects.get(customer=ana)
    assert (change.actor, change.source) == (user, "web")
    assert response.json()["history"][0]["actor"] == "messaging-team-user"


def test_patch_a_list_applies_every_change(api_client, ana):
    changes = [
        {"channel": "sms", "category": "marketing", "status": "opted_in", "source": "import"},
        {"channel": "email", "category": "marketing", "status": "opted_in", "source": "import"},
        {"channel": "sms", "category": "marketing", "status": "opted_out", "source": "STOP"},
    ]
    response = api_client.patch(URL, changes, format="json")
    assert response.status_code == 200
    assert sorted(consent_rows(ana)) == [
        ("email", "marketing", "opted_in", "import"),
        ("sms", "marketing", "opted_out", "STOP"),
    ]
    assert ConsentChange.objects.filter(customer=ana).count() == 3


def test_patch_with_the_current_status_records_no_change(api_client, ana):
    f.consent(ana, "sms", "marketing", "opted_out", source="earlier")
    body = {"channel": "sms", "category": "marketing", "status": "opted_out", "source": "again"}
    assert api_client.patch(URL, body, format="json").status_code == 200
    assert consent_rows(ana) == [("sms", "marketing", "opted_out", "earlier")]
    assert not ConsentChange.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"channel": "fax", "category": "marketing", "status": "opted_out"}, "channel"),
        ({"channel": "sms", "category": "promo", "status": "opted_out"}, "category"),
        ({"channel": "sms", "category": "marketing", "status": "maybe"}, "status"),
        ({"channel": "email", "category": "marketing", "status": "stopped"}, "status"),
        ({"category": "marketing", "status": "opted_out"}, "channel"),
        ({"channel": "sms", "category": "marketing", "status": "opted_out", "source": "x" * 121}, "source"),
        (
            [
                {"channel": "email", "category": "marketing", "status": "opted_out"},
                {"channel": "sms", "category": "marketing", "status": "nope"},
            ],
            "1.status",
        ),
        ([], "non_field_errors"),
        ("opted_out", "non_field_errors"),
    ],
)
def test_invalid_change_is_a_400_naming_the_field_and_changes_nothing(api_client, ana, payload, field):
    f.consent(ana, "email", "marketing", "opted_in", source="before")
    response = api_client.patch(URL, payload, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == "invalid"
    assert [entry["field"] for entry in body["error"]["fields"]] == [field]
    assert consent_rows(ana) == [("email", "marketing", "opted_in", "before")]
    assert not ConsentChange.objects.exists()
    assert not SuppressedIdentifier.objects.exists()


def test_more_than_fifty_changes_are_refused(api_client, ana):
    changes = [{"channel": "sms", "category": "marketing", "status": "opted_in"}] * 51
    response = api_client.patch(URL, changes, format="json")
    assert response.status_code == 400
    assert not Consent.objects.exists()


def test_a_failure_midway_rolls_back_every_change(api_client, ana, monkeypatch):
    from customers.api import read

    calls = {"n": 0}
    real = read.do_set_consent

    def fail_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(read, "do_set_consent", fail_on_second)
    changes = [
        {"channel": "email", "category": "marketing", "status": "opted_out"},
        {"channel": "sms", "category": "marketing", "status": "opted_out"},
    ]
    client = api_client
    client.raise_request_exception = True
    with pytest.raises(RuntimeError):
        client.patch(URL, changes, format="json")
    assert not Consent.objects.exists()
    assert not ConsentChange.objects.exists()
    assert not SuppressedIdentifier.objects.exists()


def test_patch_on_an_unknown_customer_is_a_404(api_client, db):
    response = api_client.patch(
        "/api/v1/customers/ghost/consent", {"channel": "sms", "category": "marketing", "status": "opted_out"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not Consent.objects.exists()


def test_a_cleared_status_reads_as_null_in_the_history(api_client, ana):
    # A bounce lifted by a new address leaves a change whose new status is "not set".
    ConsentChange.objects.create(
        customer=ana, channel="email", category="transactional", previous_status="bounced",
        status="", source="address changed: bounce lifted", changed_at=T0,
    )
    history = api_client.get("/api/v1/customers/ana-1/consent").json()["history"]
    assert history[0]["previous_status"] == "bounced"
    assert history[0]["status"] is None
