"""The cadence dashboard page: who may open it, its filters, its CSV exports and how it
keeps itself current."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.urls import reverse

from channels_app.ledger import (
    QueueRequest,
    claim_many_for_sending,
    do_queue_message,
    record_sent_many,
)
from customers.models import Customer
from journeys.models import Journey, JourneyStatus
from orchestrator.dashboards.panels.registry import PANELS
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

URL = "/dashboards/cadence/"
NOW = dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}
REDIS_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]}}}


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def messaging(client, make_user):
    client.force_login(make_user(Role.MESSAGING))
    return client


def send(customer, channel, at, key):
    pk = do_queue_message(QueueRequest(customer_id=customer.pk, channel=channel, category="marketing",
                                       idempotency_key=key, at=at)).message.pk
    claim_many_for_sending([pk], at=at)
    record_sent_many([(pk, "outbox", key)], at=at)


@pytest.fixture
def ledger():
    ada = Customer.objects.create(external_id="ada", email="ada@example.com")
    bob = Customer.objects.create(external_id="bob", email="bob@example.com")
    for i in range(3):
        send(ada, "email", NOW - dt.timedelta(hours=i + 1), f"a{i}")
    send(bob, "sms", NOW - dt.timedelta(days=10), "b")
    return ada, bob


@pytest.mark.parametrize(("who", "status"), [(Role.MARKETER, 403), (Role.MESSAGING, 200), (Role.ADMIN, 200), (None, 403)],
                         ids=["marketer", "messaging", "admin", "no role"])
def test_only_the_messaging_team_and_admins_may_open_it(client, make_user, who, status):
    client.force_login(make_user(who))
    assert client.get(URL).status_code == status
    assert client.get(URL, {"panel": "pressure"}, **HTMX).status_code == status
    assert client.get(URL, {"export": "pressure.per-day"}).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"


@pytest.mark.parametrize(("who", "shown"), [(Role.MESSAGING, True), (Role.ADMIN, True), (Role.MARKETER, False)],
                         ids=["messaging", "admin", "marketer"])
def test_the_cadence_nav_link_shows_only_to_those_who_may_open_it(client, make_user, who, shown):
    client.force_login(make_user(who))
    page = client.get(reverse("customers:list")).content.decode()
    assert (f'href="{URL}"' in page) is shown


def test_the_page_shows_every_panel_with_charts_and_tables(messaging, ledger):
    page = messaging.get(URL).content.decode()
    for key in PANELS:
        assert f'id="panel-{key}"' in page
    assert page.count("<canvas data-chart=") >= 4
    assert f'href="/customers/{ledger[0].pk}/"' in page  # the heaviest customer links to her timeline
    assert "vendor/chartjs/chart.umd.min.js" in page and "cdn" not in page.lower()


def test_a_panel_fragment_answers_an_htmx_request_alone(messaging, ledger):
    response = messaging.get(URL, {"panel": "mix", "period": "7"}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card cadence-panel" id="panel-mix"')
    assert "panel-pressure" not in body and "<html" not in body


def test_csv_export_writes_the_figure_behind_the_chart(messaging, ledger):
    response = messaging.get(URL, {"export": "pressure.per-day", "period": "7"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="cadence-pressure-per-day-2026-03-05-2026-03-11.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["scope", "messages", "customer-days"], ["All channels", "3", "1"], ["Email", "3", "1"]]


def test_csv_export_of_the_heaviest_customers_names_them(messaging, ledger):
    rows = list(csv.reader(io.StringIO(messaging.get(URL, {"export": "pressure.heaviest", "period": "30"}).content.decode())))
    assert rows == [
        ["customer", "busiest day", "messages that day", "messages in period"],
        ["ada@example.com", "2026-03-11", "3", "3"],
        ["bob@example.com", "2026-03-01", "1", "1"],
    ]


def test_filters_narrow_the_period_and_the_channel(messaging, ledger):
    rows = list(csv.reader(io.StringIO(messaging.get(URL, {"export": "mix.per-day", "from": "2026-03-01", "to": "2026-03-02",
                                                           "channel": "sms"}).content.decode())))
    assert rows == [["day", "channel", "messages"], ["2026-03-01", "sms", "1"]]


@pytest.mark.parametrize(("params", "field", "reason"), [
    ({"period": "12"}, "period", "'12' is not one of 7, 30, 90 days"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "to", "must be on or after the start date"),
    ({"from": "yesterday", "to": "2026-03-01"}, "from", "'yesterday' is not a date (YYYY-MM-DD)"),
    ({"channel": "fax"}, "channel", "'fax' is not one of email, sms, push, in_app"),
    ({"category": "spam"}, "category", "'spam' is not one of marketing, transactional"),
    ({"journey": "x"}, "journey", "'x' is not a journey id"),
])
def test_bad_filters_are_named_inline_and_refused_for_export(messaging, params, field, reason):
    page = messaging.get(URL, params)
    assert page.status_code == 422
    assert f"{field.capitalize()}: {reason}" in page.content.decode().replace("&#x27;", "'")
    assert 'id="panel-' not in page.content.decode()
    fragment = messaging.get(URL, params, **HTMX)
    assert fragment.status_code == 422 and fragment.content.decode().lstrip().startswith('<form id="cadence-filters"')
    export = messaging.get(URL, {**params, "export": "pressure.per-day"})
    assert (export.status_code, export.content.decode()) == (400, f"{field}: {reason}")


def test_an_unknown_export_is_refused_naming_the_choices(messaging):
    response = messaging.get(URL, {"export": "pressure.nope"})
    assert response.status_code == 400
    assert response.content.decode() == "export: panel pressure has no figure 'nope'; choose from per-day, per-week, caps, heaviest"


def test_with_the_in_memory_layer_the_panels_poll(messaging, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    page = messaging.get(URL).content.decode()
    assert page.count('hx-trigger="every 30s" data-poll="30"') == len(PANELS)
    assert 'data-websocket="off"' in page


def test_with_a_layer_across_processes_the_panels_wait_for_the_websocket(messaging, settings):
    settings.CHANNEL_LAYERS = REDIS_LAYER
    page = messaging.get(URL).content.decode()
    assert page.count('hx-trigger="dashboard-refresh from:body"') == len(PANELS)
    assert "data-poll" not in page and 'data-websocket="on"' in page


# --- journey overlap: the customers behind a pair -------------------------------------------
def overlapping():
    from tests.test_dashboard_panels import GRAPH, enrol, make_version

    welcome = Journey.objects.create(name="Welcome", status=JourneyStatus.LIVE)
    winback = Journey.objects.create(name="Win back", status=JourneyStatus.LIVE)
    versions = {j.pk: make_version(j, GRAPH) for j in (welcome, winback)}
    ada, bob, cy = (Customer.objects.create(external_id=n, traits={"first_name": n.title()}) for n in ("ada", "bob", "cy"))
    for journey, customer, node in [(welcome, ada, "mail"), (winback, ada, "wait"), (welcome, bob, "wait"),
                                    (winback, cy, "wait")]:
        enrol(journey, versions[journey.pk], customer, node, NOW + dt.timedelta(hours=1))
    enrol(winback, versions[winback.pk], bob, "done", None, state="exited", key="left")  # not inside any more
    return welcome, winback


def test_each_colliding_pair_links_to_the_customers_inside_both(messaging):
    welcome, winback = overlapping()
    page = messaging.get(reverse("dashboards:cadence")).content.decode()
    url = reverse("dashboards:overlap", args=[welcome.pk, winback.pk])
    assert f'<a href="{url}">1</a>' in page
    listed = messaging.get(url)
    assert listed.status_code == 200
    html = listed.content.decode()
    assert "Inside Welcome and Win back" in html and "1 customer" in html
    assert "Ada" in html and "<td>mail" in html and "<td>wait" in html  # GRAPH's nodes have no labels: their ids
    assert "Bob" not in html and "Cy" not in html


@pytest.mark.parametrize(("who", "status"), [(Role.MARKETER, 403), (Role.MESSAGING, 404), (Role.ADMIN, 404)])
def test_the_pair_page_is_the_dashboards_and_a_pair_must_exist(client, make_user, who, status):
    welcome, _ = overlapping()
    client.force_login(make_user(who))
    assert client.get(reverse("dashboards:overlap", args=[welcome.pk, welcome.pk + 1000])).status_code == status
