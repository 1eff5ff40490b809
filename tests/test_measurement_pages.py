"""The measurement pages: who may open them, what they say, the CSV behind each table,
filters that do not mean anything, and one customer's path to conversion."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from orchestrator.roles import Role
from tests import measurement_factories as f

pytestmark = pytest.mark.django_db

C = datetime(2026, 5, 8, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def ledger():
    """Cart recovery: Ann converts (120.00) after a push then an email from it, with a
    marketing SMS from outside journeys between; Bo exits after one push; Cy (holdout)
    converts (30.00); Di (holdout) does not."""
    cart = f.journey("Cart recovery", holdout_percent=10)
    ann, bo, cy, di = (f.customer(name) for name in ("Ann", "Bo", "Cy", "Di"))
    ann_in = f.converted(cart, ann, C, "120.00", entered_at=C - 3 * DAY)
    f.message(ann, "push", C - 2 * DAY, of=ann_in, subject="Still deciding?", opened_at=C - 2 * DAY + timedelta(minutes=5))
    f.message(ann, "sms", C - DAY, subject="Weekend sale")
    f.message(ann, "email", C - timedelta(hours=2), of=ann_in, subject="Your cart misses you", clicked_at=C - timedelta(hours=1))
    bo_in = f.enrollment(cart, bo, entered_at=C - 3 * DAY)
    f.message(bo, "push", C - 2 * DAY, of=bo_in)
    f.converted(cart, cy, C, "30.00", entered_at=C - 3 * DAY, holdout=True)
    f.enrollment(cart, di, entered_at=C - 3 * DAY, holdout=True)
    return cart, ann_in


def pages(cart, enrollment) -> list[str]:
    return [
        reverse("journeys:measurement", args=[cart.pk]),
        reverse("journeys:attribution"),
        reverse("journeys:conversion_path", args=[cart.pk, enrollment.pk]),
    ]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING, Role.ADMIN])
def test_every_role_that_sees_journeys_sees_their_measurement(client, make_user, ledger, role):
    client.force_login(make_user(role))
    assert [client.get(url).status_code for url in pages(*ledger)] == [200, 200, 200]


def test_a_user_without_a_role_is_refused(client, make_user, ledger):
    client.force_login(make_user(None))
    assert [client.get(url).status_code for url in pages(*ledger)] == [403, 403, 403]


def test_anonymous_visitors_are_sent_to_sign_in(client, ledger):
    for url in pages(*ledger):
        assert client.get(url)["Location"] == f"{reverse('login')}?next={url}"


@pytest.fixture
def marketer(client, make_user):
    client.force_login(make_user(Role.MARKETER))
    return client


def rows_of(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_journey_page_states_the_lift_in_plain_words(marketer, ledger):
    cart, ann_in = ledger
    response = marketer.get(reverse("journeys:measurement", args=[cart.pk]))
    page = response.content.decode()
    # Sent to: 1 of 2 converted; holdout: 1 of 2. Newcombe 95% CI of 0.5 - 0.5 with n = 2 each:
    # Wilson(1, 2) = (0.0945, 0.9055); low = 0 - sqrt(0.4055² + 0.4055²) = -0.5735, high = +0.5735.
    assert "Converted 50.0% vs 50.0% in the holdout: +0.0 points (95% CI -57.3 to +57.3)" in page
    assert "The interval includes zero: this could be chance." in page
    assert reverse("journeys:conversion_path", args=[cart.pk, ann_in.pk]) in page
    assert 'id="attribution-chart"' in page and 'id="kpi-chart"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page


def test_journey_detail_links_to_its_measurement(marketer, ledger):
    cart, _ = ledger
    page = marketer.get(reverse("journeys:detail", args=[cart.pk])).content.decode()
    assert f'href="{reverse("journeys:measurement", args=[cart.pk])}"' in page


def test_summary_csv(marketer, ledger):
    cart, _ = ledger
    response = marketer.get(reverse("journeys:measurement", args=[cart.pk]), {"export": "summary"})
    assert response["Content-Disposition"] == 'attachment; filename="cart-recovery-summary.csv"'
    assert rows_of(response) == [
        ["group", "entered", "in_progress", "converted", "conversion_rate", "revenue", "revenue_per_entrant"],
        ["treatment", "2", "0", "1", "0.5000", "120.00", "60.00"],
        ["holdout", "2", "0", "1", "0.5000", "30.00", "15.00"],
        ["all", "4", "0", "2", "0.5000", "150.00", "37.50"],
    ]


def test_sequences_csv(marketer, ledger):
    cart, _ = ledger
    response = marketer.get(reverse("journeys:measurement", args=[cart.pk]), {"export": "sequences"})
    # Ann's own journey sent a push then an email (the SMS was a campaign); Bo got one push.
    assert rows_of(response) == [
        ["sequence", "touches", "enrollments", "converted", "conversion_rate"],
        ["push > email", "2", "1", "1", "1.0000"],
        ["push", "1", "1", "0", "0.0000"],
    ]


def test_attribution_csv_by_channel_with_a_chosen_lookback(marketer, ledger):
    cart, _ = ledger
    url = reverse("journeys:measurement", args=[cart.pk])
    week = rows_of(marketer.get(url, {"export": "channels"}))
    # 7 days: push (2 days before), SMS (1 day), email (2 hours). Time decay, half-life 7 days:
    # 2^(-2/7) = 0.820335, 2^(-1/7) = 0.905724, 2^(-1/84) = 0.991782 (sum 2.717841)
    #   -> 0.3018, 0.3333, 0.3649; revenue ×120 = 36.22, 39.99, 43.79.
    # Position: 0.4, 0.2, 0.4 -> 48.00, 24.00, 48.00.
    assert week == [
        ["channel", "label", "touches",
         "first_touch_conversions", "last_touch_conversions", "linear_conversions", "time_decay_conversions", "position_based_conversions",
         "first_touch_revenue", "last_touch_revenue", "linear_revenue", "time_decay_revenue", "position_based_revenue"],
        ["email", "Email", "1", "0.0000", "1.0000", "0.3333", "0.3649", "0.4000", "0.00", "120.00", "40.00", "43.79", "48.00"],
        ["push", "Push", "1", "1.0000", "0.0000", "0.3333", "0.3018", "0.4000", "120.00", "0.00", "40.00", "36.22", "48.00"],
        ["sms", "SMS", "1", "0.0000", "0.0000", "0.3333", "0.3333", "0.2000", "0.00", "0.00", "40.00", "39.99", "24.00"],
    ]
    # A one-day lookback keeps only the SMS and the email: 1/2 each, linear.
    day = rows_of(marketer.get(url, {"export": "channels", "lookback": "1"}))
    assert [(r[0], r[5]) for r in day[1:]] == [("email", "0.5000"), ("sms", "0.5000")]


def test_attribution_csv_by_journey(marketer, ledger):
    cart, _ = ledger
    rows = rows_of(marketer.get(reverse("journeys:attribution"), {"export": "journeys"}))
    assert [(r[0], r[1], r[2], r[5]) for r in rows[1:]] == [
        (str(cart.pk), "Cart recovery", "2", "0.6667"), ("outside journeys", "Outside journeys", "1", "0.3333"),
    ]


def test_an_unknown_table_is_not_found(marketer, ledger):
    cart, _ = ledger
    assert marketer.get(reverse("journeys:measurement", args=[cart.pk]), {"export": "people"}).status_code == 404


@pytest.mark.parametrize(("params", "message"), [
    ({"lookback": "0"}, "Ensure this value is greater than or equal to 1."),
    ({"lookback": "soon"}, "Enter a whole number."),
    ({"half_life": "0"}, "Ensure this value is greater than or equal to 0.1."),
    ({"since": "2026-05-09", "until": "2026-05-01"}, "The end of the period must be on or after its start."),
])
def test_filters_that_mean_nothing_are_named_and_nothing_is_measured(marketer, ledger, params, message):
    cart, _ = ledger
    for url in (reverse("journeys:measurement", args=[cart.pk]), reverse("journeys:attribution")):
        response = marketer.get(url, params)
        page = response.content.decode()
        assert response.status_code == 400
        assert message in page
        assert "Nothing was measured: fix the filters marked above." in page
        assert 'id="attribution-channel"' not in page


def test_the_period_filters_conversions_by_day_inclusive(marketer, ledger):
    rows = rows_of(marketer.get(reverse("journeys:attribution"), {"export": "channels", "since": "2026-05-08", "until": "2026-05-08"}))
    assert len(rows) == 4
    rows = rows_of(marketer.get(reverse("journeys:attribution"), {"export": "channels", "until": "2026-05-07"}))
    assert rows[1:] == []


def test_path_to_conversion_lists_each_touch_with_its_credit_and_the_conversion(marketer, ledger):
    cart, ann_in = ledger
    page = marketer.get(reverse("journeys:conversion_path", args=[cart.pk, ann_in.pk]), {"lookback": "1"}).content.decode()
    assert page.index("Still deciding?") < page.index("Weekend sale") < page.index("Your cart misses you") < page.index("Order Completed")
    assert "Before the window: no credit." in page  # the push, 2 days before a 1-day window
    assert "outside journeys · marketing" in page
    assert "worth <strong>120.00</strong>" in page
    # The SMS and the email share the conversion: 0.50 each, linear.
    assert page.count('<div data-model="linear"><dt>Linear</dt><dd>0.50</dd></div>') == 2


def test_path_of_an_enrollment_of_another_journey_is_not_found(marketer, ledger):
    cart, ann_in = ledger
    other = f.journey("Other")
    assert marketer.get(reverse("journeys:conversion_path", args=[other.pk, ann_in.pk])).status_code == 404


def test_customer_profile_links_a_conversion_to_its_path(marketer, ledger):
    cart, ann_in = ledger
    page = marketer.get(reverse("customers:profile", args=[ann_in.customer_id])).content.decode()
    assert reverse("journeys:conversion_path", args=[cart.pk, ann_in.pk]) in page
