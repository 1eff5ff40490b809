"""The in-app inbox API: tokens, listing (which records the send), read / clicked / dismissed."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
import yaml
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient

from channels_app.delivery import recover_stranded
from channels_app.inbox_tokens import mint_inbox_token
from channels_app.models import Message, MessageTransition
from channels_app.providers import PROVIDERS
from channels_app.providers.inapp import InAppProvider
from customers.models import Customer, Event
from orchestrator.dispatch import SendRequest, dispatch
from tests.api_factories import message

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=3)
IN_APP = {"CHORUS_PROVIDERS": {"email": "outbox", "sms": "outbox", "push": "outbox", "in_app": "inapp"}}


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ada() -> Customer:
    return Customer.objects.create(external_id="ada")


@pytest.fixture
def bob() -> Customer:
    return Customer.objects.create(external_id="bob")


def app(customer: Customer) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {mint_inbox_token(customer.external_id).token}")
    return client


def queue_in_app(customer: Customer, key: str, django_capture_on_commit_callbacks, **content) -> Message:
    """An in-app message queued and delivered as a journey would, through the in-app provider."""
    request = SendRequest(
        customer_id=customer.pk, channel="in_app", category="marketing", idempotency_key=key,
        content={"title": "Gold is close", "body": "Two more orders.", **content},
    )
    with override_settings(**IN_APP), django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            dispatch(request)
    return Message.objects.get(idempotency_key=key)


@pytest.fixture
def api_key_with(make_api_key):
    return lambda scope: make_api_key((scope,))[1]


@pytest.fixture
def api_client_with(api_key_with):
    def client(scope: str) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_with(scope)}")
        return api

    return client


def history(msg: Message) -> list[tuple[str, str]]:
    return list(MessageTransition.objects.filter(message=msg).values_list("from_status", "to_status"))


# --- Next visit: the first fetch records the send ---------------------------------------------


def test_in_app_message_waits_in_the_inbox_unsent_until_first_fetched(ada, django_capture_on_commit_callbacks):
    msg = queue_in_app(ada, "k1", django_capture_on_commit_callbacks)

    assert (msg.status, msg.provider, msg.sent_at) == ("sending", "inapp", None)


def test_first_fetch_records_the_send_at_that_moment_and_only_once(ada, django_capture_on_commit_callbacks, _frozen_clock):
    msg = queue_in_app(ada, "k1", django_capture_on_commit_callbacks)
    _frozen_clock.move_to(T1)

    first = app(ada).get("/api/v1/inbox/ada")
    _frozen_clock.move_to(T1 + dt.timedelta(minutes=5))
    second = app(ada).get("/api/v1/inbox/ada")

    assert first.status_code == second.status_code == 200
    assert first.json() == {
        "count": 1, "next": None, "previous": None, "unread": 1,
        "results": [{
            "id": str(msg.public_id), "category": "marketing",
            "content": {"title": "Gold is close", "body": "Two more orders."},
            "created_at": "2026-11-02T09:00:00Z", "sent_at": "2026-11-02T12:00:00Z",
            "read_at": None, "clicked_at": None, "dismissed_at": None,
        }],
    }
    assert second.json()["results"][0]["sent_at"] == "2026-11-02T12:00:00Z"
    msg.refresh_from_db()
    assert (msg.status, msg.sent_at) == ("sent", T1)
    assert history(msg) == [("", "queued"), ("queued", "sending"), ("sending", "sent")]


def test_inbox_is_newest_first_paginated_and_hides_other_channels_dismissed_and_expired(ada, bob):
    old = message(ada, "in_app", at=T0 - dt.timedelta(hours=2))
    new = message(ada, "in_app", at=T0 - dt.timedelta(hours=1))
    message(ada, "in_app", at=T0, dismissed_at=T0)
    message(ada, "in_app", at=T0, content={"title": "Sale", "expires_at": "2026-11-02T08:59:59Z"})
    message(ada, "email", at=T0)
    message(ada, "in_app", status="suppressed", at=T0)
    message(bob, "in_app", at=T0)

    page = app(ada).get("/api/v1/inbox/ada?limit=1").json()
    rest = app(ada).get("/api/v1/inbox/ada?limit=1&offset=1").json()

    assert [r["id"] for r in page["results"] + rest["results"]] == [str(new.public_id), str(old.public_id)]
    assert (page["count"], page["unread"]) == (2, 2)
    assert page["next"] == "http://testserver/api/v1/inbox/ada?limit=1&offset=1"


def test_message_with_a_future_expiry_is_listed(ada):
    msg = message(ada, "in_app", content={"title": "Sale", "expires_at": "2026-11-02T09:00:01Z"})

    assert [r["id"] for r in app(ada).get("/api/v1/inbox/ada").json()["results"]] == [str(msg.public_id)]


def test_bad_paging_parameter_is_a_400_naming_it(ada):
    response = app(ada).get("/api/v1/inbox/ada?limit=0")

    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "limit"


# --- Tokens ------------------------------------------------------------------------------------


def test_backend_mints_a_token_with_a_read_key_and_the_app_reads_the_inbox_with_it(ada, api_client_with):
    minted = api_client_with("read").post("/api/v1/inbox/ada/token")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {minted.json()['token']}")

    assert minted.status_code == 201
    assert (minted.json()["external_id"], minted.json()["expires_in"]) == ("ada", 86400)
    assert client.get("/api/v1/inbox/ada").status_code == 200


def test_minting_needs_an_api_key_with_the_read_scope(ada, api_client_with):
    assert APIClient().post("/api/v1/inbox/ada/token").status_code == 401
    response = api_client_with("ingest").post("/api/v1/inbox/ada/token")
    assert response.status_code == 403
    assert "'read' scope" in response.json()["error"]["message"]


def test_minting_for_an_unknown_customer_is_a_404(api_client_with):
    assert api_client_with("read").post("/api/v1/inbox/nobody/token").status_code == 404


def test_a_token_for_one_customer_never_reads_another_inbox(ada, bob):
    message(bob, "in_app")

    response = app(ada).get("/api/v1/inbox/bob")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "The inbox token belongs to another customer."


def test_an_api_key_is_not_an_inbox_token(ada, api_key_with):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_with('read')}")

    response = client.get("/api/v1/inbox/ada")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The inbox token is not valid."


def test_missing_and_expired_tokens_are_401_naming_the_reason(ada, _frozen_clock):
    client = app(ada)
    missing = APIClient().get("/api/v1/inbox/ada")
    _frozen_clock.move_to(T0 + dt.timedelta(hours=24, seconds=1))
    expired = client.get("/api/v1/inbox/ada")

    assert (missing.status_code, expired.status_code) == (401, 401)
    assert missing.json()["error"]["message"].startswith("No inbox token")
    assert expired.json()["error"]["message"] == "The inbox token has expired: ask your backend for a new one."


def test_token_signed_with_a_rotated_out_key_still_works_until_it_expires(ada, settings):
    token = mint_inbox_token("ada").token
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-brand-new-key-" * 4, [settings.SECRET_KEY]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert client.get("/api/v1/inbox/ada").status_code == 200


def test_valid_token_for_a_customer_that_does_not_exist_is_a_404():
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {mint_inbox_token('ghost').token}").get("/api/v1/inbox/ghost")

    assert response.status_code == 404


# --- Read, clicked, dismissed --------------------------------------------------------------------


def mark(customer: Customer, msg: Message, action: str):
    return app(customer).post(f"/api/v1/inbox/{customer.external_id}/messages/{msg.public_id}/{action}")


def test_read_records_the_send_then_the_open_once(ada, django_capture_on_commit_callbacks):
    msg = queue_in_app(ada, "k1", django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        first = mark(ada, msg, "read")
        again = mark(ada, msg, "read")

    assert first.status_code == again.status_code == 200
    assert again.json()["read_at"] == "2026-11-02T09:00:00Z"
    msg.refresh_from_db()
    assert (msg.status, msg.sent_at, msg.opened_at) == ("opened", T0, T0)
    assert history(msg)[-2:] == [("sending", "sent"), ("sent", "opened")]
    assert list(Event.objects.filter(customer=ada).values_list("name", flat=True)) == ["message_opened"]


def test_read_after_clicked_never_moves_the_message_back(ada, _frozen_clock):
    msg = message(ada, "in_app")
    mark(ada, msg, "clicked")
    _frozen_clock.move_to(T1)

    response = mark(ada, msg, "read")

    msg.refresh_from_db()
    assert response.status_code == 200
    assert (msg.status, msg.clicked_at, msg.opened_at) == ("clicked", T0, T0)
    assert app(ada).get("/api/v1/inbox/ada").json()["unread"] == 0


def test_dismissed_leaves_the_inbox_and_dismissing_again_keeps_the_first_time(ada, _frozen_clock):
    msg = message(ada, "in_app")
    mark(ada, msg, "dismissed")
    _frozen_clock.move_to(T1)

    again = mark(ada, msg, "dismissed")

    msg.refresh_from_db()
    assert (again.status_code, again.json()["dismissed_at"]) == (200, "2026-11-02T09:00:00Z")
    assert (msg.status, msg.dismissed_at) == ("sent", T0)
    assert app(ada).get("/api/v1/inbox/ada").json()["count"] == 0


def test_clicked_wakes_the_engagement_listeners_after_commit(ada, settings, django_capture_on_commit_callbacks):
    settings.CHORUS_ENGAGEMENT_LISTENERS = ["tests.test_inbox_api.remember"]
    msg = message(ada, "in_app")
    REMEMBERED.clear()

    with django_capture_on_commit_callbacks(execute=True):
        mark(ada, msg, "clicked")

    assert REMEMBERED == [msg.pk]


REMEMBERED: list[int] = []


def remember(message_id: int) -> None:
    REMEMBERED.append(message_id)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/v1/inbox/ada/messages/{other}/read", "No in-app message"),
        ("/api/v1/inbox/ada/messages/not-a-uuid/read", "No in-app message"),
        ("/api/v1/inbox/ada/messages/{mine}/archived", "No action 'archived'"),
    ],
)
def test_marking_another_customers_or_an_unknown_message_is_a_404_and_changes_nothing(ada, bob, path, reason):
    mine, other = message(ada, "in_app"), message(bob, "in_app")

    response = app(ada).post(path.format(mine=mine.public_id, other=other.public_id))

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith(reason)
    assert set(Message.objects.values_list("status", "opened_at", "dismissed_at")) == {("sent", None, None)}


# --- The provider and crash recovery -------------------------------------------------------------


def test_in_app_provider_is_registered_for_the_in_app_channel_only():
    assert PROVIDERS["inapp"] is InAppProvider
    assert InAppProvider.channels == frozenset({"in_app"})


def test_crash_recovery_leaves_a_message_waiting_in_the_inbox_unsent(ada, django_capture_on_commit_callbacks, _frozen_clock):
    msg = queue_in_app(ada, "k1", django_capture_on_commit_callbacks)
    _frozen_clock.move_to(T0 + dt.timedelta(days=2))

    with override_settings(**IN_APP):
        recover_stranded()

    msg.refresh_from_db()
    assert (msg.status, msg.sent_at) == ("sending", None)
    assert history(msg) == [("", "queued"), ("queued", "sending")]


def test_a_send_interrupted_before_the_inbox_got_it_is_posted_again_and_still_waits(ada, _frozen_clock):
    msg = message(ada, "in_app", status="sending")  # the worker died before the provider call
    _frozen_clock.move_to(T0 + dt.timedelta(hours=1))

    with override_settings(**IN_APP):
        recover_stranded()

    msg.refresh_from_db()
    assert (msg.status, msg.provider, msg.sent_at) == ("sending", "inapp", None)


def test_schema_documents_the_inbox_with_its_own_token_scheme():
    schema = yaml.safe_load(APIClient().get("/api/schema/").content)

    assert schema["components"]["securitySchemes"]["InboxToken"]["bearerFormat"] == "inbox token"
    assert schema["paths"]["/api/v1/inbox/{external_id}"]["get"]["security"] == [{"InboxToken": []}]
    assert {"ApiKey": []} in schema["paths"]["/api/v1/inbox/{external_id}/token"]["post"]["security"]
    mark_path = schema["paths"]["/api/v1/inbox/{external_id}/messages/{public_id}/{action}"]["post"]
    assert [p["schema"].get("enum") for p in mark_path["parameters"] if p["name"] == "action"] == [
        ["clicked", "dismissed", "read"]  # drf-spectacular sorts enums
    ]
