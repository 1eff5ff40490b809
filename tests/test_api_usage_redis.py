"""The shared rate-limit counter and revocation flag on a real Redis (skipped without one)."""

import uuid

import pytest
from rest_framework.test import APIClient

from orchestrator import api_keys, api_usage


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping())
    except Exception:  # noqa: BLE001
        return False


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379"),
]


@pytest.fixture
def redis_settings(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    api_usage._redis.cache_clear()
    yield
    api_usage._redis().flushdb()
    api_usage._redis.cache_clear()


def test_counts_each_request_in_the_window(redis_settings):
    prefix = uuid.uuid4().hex[:8]
    assert [api_usage.hit(1, prefix, 100)[0] for _ in range(3)] == [1, 2, 3]
    assert api_usage.hit(1, prefix, 101) == (1, False)  # a new minute starts again
    assert api_usage._redis().ttl(api_usage._counter_key(1, 100)) <= api_usage.WINDOW_TTL_SECONDS


def test_over_the_limit_answers_429_with_retry_after(redis_settings, make_api_key):
    api_key, clear = make_api_key(("ingest",))
    api_key.rate_limit_per_minute = 2
    api_key.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    body = {"userId": "u1", "event": "Viewed"}
    statuses = [client.post("/api/v1/track", body, format="json").status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429


def test_revocation_in_another_process_reaches_a_cached_key(redis_settings, make_api_key):
    api_key, clear = make_api_key(("ingest",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert client.post("/api/v1/track", {"userId": "u1", "event": "Viewed"}, format="json").status_code == 200
    assert api_key.prefix in api_keys._KEY_CACHE
    # Another process revokes: the database row and the shared flag change, not our cache.
    api_key.__class__.objects.filter(pk=api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    api_usage.mark_revoked(api_key.prefix)

    response = client.post("/api/v1/track", {"userId": "u1", "event": "Viewed"}, format="json")
    assert response.status_code == 401
    assert api_key.prefix not in api_keys._KEY_CACHE
