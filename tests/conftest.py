"""Shared fixtures: API keys with scopes, users in roles, an authenticated API client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from rest_framework.test import APIClient

from channels_app.content_rules_loading import forget_rules
from channels_app.providers import forget_provider_configs
from orchestrator.api_keys import do_create_api_key, forget_cached_keys
from orchestrator.governor.loading import forget_policy
from orchestrator.intelligence.store import forget_population
from orchestrator.roles import Role


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "content_rules: publish and send under the channel content rules; other tests publish and send "
        "whatever their content says (saving still reports content problems everywhere)",
    )


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    forget_cached_keys()
    forget_policy()
    forget_rules()
    forget_provider_configs()
    forget_population()
    yield
    cache.clear()
    forget_cached_keys()
    forget_policy()
    forget_rules()
    forget_provider_configs()
    forget_population()


@pytest.fixture(autouse=True)
def _no_content_rules_unless_marked(request, monkeypatch):
    """The shipped content rules would turn every test that sends a marketing SMS without
    "Reply STOP" into a content-rules test (as the frequency policy would a governor test,
    below): only tests marked ``content_rules`` are refused publishing or sending for it."""
    if request.node.get_closest_marker("content_rules"):
        return
    monkeypatch.setattr("journeys.content.publish_problems", lambda graph, category, rules: [])
    monkeypatch.setattr("orchestrator.engine.steps.content_refusal", lambda channel, category, content: "")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Users sign in throughout the suite; the production hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_api_key(db):
    """make_api_key(scopes=["ingest"], name=None) -> (ApiKey, clear key)."""
    counter = {"n": 0}

    def make(scopes=("ingest",), name=None, source=""):
        counter["n"] += 1
        created = do_create_api_key(name or f"test-key-{counter['n']}", list(scopes), source=source)
        return created.api_key, created.clear_key

    return make


@pytest.fixture
def api_client(make_api_key):
    """An APIClient authenticated with a key holding every scope."""
    _, clear = make_api_key(("ingest", "read", "manage"), name="all-scopes")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


@pytest.fixture
def make_user(db):
    """make_user(role=Role.MARKETER, username=None) -> User in that role's group."""

    def make(role: Role | None = None, username: str | None = None, superuser: bool = False):
        name = username or f"{(role.value if role else 'nobody').lower().replace(' ', '-')}-user"
        user = User.objects.create_user(name, f"{name}@example.com", "correct-horse-battery", is_superuser=superuser, is_staff=superuser)
        if role is not None:
            user.groups.add(Group.objects.get(name=role.value))
        return user

    return make


@pytest.fixture
def mara(make_user):
    """The marketer who builds journeys in the editor and studio tests."""
    return make_user(Role.MARKETER, username="mara")


@pytest.fixture
def marketer(client, mara):
    """A test client signed in as mara (modules that define their own keep theirs)."""
    client.force_login(mara)
    return client


@pytest.fixture
def ingest_client(make_api_key):
    """An APIClient whose key holds only the ``ingest`` scope, with source label ``crm``."""
    _, clear = make_api_key(("ingest",), name="ingest-only", source="crm")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    return client


@pytest.fixture(autouse=True)
def _no_frequency_policy_unless_governed(request):
    """The shipped policy (3 marketing messages a day, 30 min spacing, quiet hours…) would
    turn every test that sends into a governor test. Tests run with no caps, spacing or
    quiet hours unless marked ``governed``, which keeps the migrated defaults."""
    marker = request.node.get_closest_marker("django_db")
    fixtures = set(request.fixturenames)
    uses_db = marker is not None or fixtures & {"db", "transactional_db", "live_server"}
    if not uses_db or request.node.get_closest_marker("governed"):
        return
    transactional = (marker is not None and marker.kwargs.get("transaction", False)) or fixtures & {
        "transactional_db", "live_server"
    }
    request.getfixturevalue("transactional_db" if transactional else "db")
    from orchestrator.governor.models import FrequencyRule, GovernorSettings, QuietHoursRule

    FrequencyRule.objects.all().delete()
    QuietHoursRule.objects.all().delete()
    # update_or_create: a transactional test's flush deletes the migrated row, and without
    # one the model's default (30 min spacing) applies.
    GovernorSettings.objects.update_or_create(pk=1, defaults={"min_spacing_minutes": 0})
    forget_policy()
