"""Who may open which web page: the exact status for every role on every page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from customers.models import Consent, ConsentChange, Customer
from orchestrator.roles import Role

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
CONSENT = {"channel": "email", "category": "marketing", "status": "unsubscribed"}

# page -> status per kind of user. "login" means a redirect to the sign-in page.
MATRIX = {
    "overview": {"anonymous": "login", "no role": 403, Role.MARKETER: 302, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
    "customer list": {"anonymous": "login", "no role": 403, Role.MARKETER: 200, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
    "list fragment": {"anonymous": "login", "no role": 403, Role.MARKETER: 200, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
    "profile": {"anonymous": "login", "no role": 403, Role.MARKETER: 200, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
    "timeline fragment": {"anonymous": "login", "no role": 403, Role.MARKETER: 200, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
    "consent change": {"anonymous": "login", "no role": 403, Role.MARKETER: 403, Role.MESSAGING: 200, Role.ADMIN: 200, "superuser": 200},
}
USERS = ["anonymous", "no role", Role.MARKETER, Role.MESSAGING, Role.ADMIN, "superuser"]


@pytest.fixture
def customer():
    return Customer.objects.create(external_id="u-1", email="u1@example.com")


def request_page(client, page: str, customer: Customer):
    profile = reverse("customers:profile", args=[customer.pk])
    if page == "overview":
        return client.get(reverse("home"))
    if page == "customer list":
        return client.get(reverse("customers:list"))
    if page == "list fragment":
        return client.get(reverse("customers:list"), {"q": "u"}, **HTMX)
    if page == "profile":
        return client.get(profile)
    if page == "timeline fragment":
        return client.get(profile, {"kind": "messages"}, **HTMX)
    return client.post(profile, CONSENT, **HTMX)


def sign_in(client, make_user, who):
    if who == "anonymous":
        return
    if who == "no role":
        client.force_login(make_user(None))
    elif who == "superuser":
        client.force_login(make_user(None, username="root", superuser=True))
    else:
        client.force_login(make_user(who))


@pytest.mark.parametrize("page", list(MATRIX))
@pytest.mark.parametrize("who", USERS, ids=str)
def test_status_for_every_role_on_every_page(client, make_user, customer, page, who):
    sign_in(client, make_user, who)
    response = request_page(client, page, customer)
    expected = MATRIX[page][who]
    if expected == "login":
        assert response.status_code == 302
        assert response["Location"].startswith(f"{reverse('login')}?next=")
    else:
        assert response.status_code == expected


@pytest.mark.parametrize("who", ["anonymous", "no role", Role.MARKETER], ids=str)
def test_refused_consent_changes_change_nothing(client, make_user, customer, who):
    sign_in(client, make_user, who)
    request_page(client, "consent change", customer)
    assert not Consent.objects.exists()
    assert not ConsentChange.objects.exists()


def test_users_without_a_role_get_a_page_that_says_so(client, make_user):
    client.force_login(make_user(None))
    response = client.get(reverse("customers:list"))
    assert response.status_code == 403
    assert "Your account has no role yet." in response.content.decode()


def test_anonymous_users_are_sent_to_sign_in_and_back(client, customer):
    profile = reverse("customers:profile", args=[customer.pk])
    assert client.get(profile)["Location"] == f"{reverse('login')}?next={profile}"


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_pages_refuse_other_methods(client, make_user, customer, method):
    client.force_login(make_user(Role.ADMIN))
    assert getattr(client, method)(reverse("customers:profile", args=[customer.pk])).status_code == 405
    assert getattr(client, method)(reverse("customers:list")).status_code == 405
