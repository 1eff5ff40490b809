"""Delivery retries: backoff with jitter, Retry-After, failover, circuit breaker, ambiguous
outcomes and rate limits, against a local HTTP server standing in for the provider."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import time_machine

from channels_app.breaker import Breaker
from channels_app.delivery import deliver, recover_stranded
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import Message, MessageTransition, ProviderConfig
from channels_app.providers import (
    PROVIDERS,
    Delivery,
    Provider,
    ProviderError,
    SendResult,
    forget_provider_configs,
)
from channels_app.retries import backoff_seconds
from customers.models import Customer

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SMS = {"body": "Your code is 123456"}


# --- A provider's API on 127.0.0.1, and a test-only adapter that calls it over HTTP -----------


class StubApi:
    """Answers POST /<account> from a script per account ("ok", "500", "429:<seconds>",
    "400", "hang"); "ok" once the script runs out. Records every request it received."""

    def __init__(self):
        self.scripts: dict[str, list[str]] = {}
        self.received: list[tuple[str, str]] = []  # (account, idempotency key)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def script(self, account: str, *answers: str) -> None:
        self.scripts[account] = list(answers)

    def keys(self, account: str) -> list[str]:
        return [key for name, key in self.received if name == account]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                account = self.path.strip("/")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    api.received.append((account, body["key"]))
                    script = api.scripts.get(account, [])
                    answer = script.pop(0) if script else "ok"
                if answer == "hang":  # received, and no answer within the client's timeout
                    time.sleep(HttpGateway.timeout * 3)
                    return
                status, _, retry_after = answer.partition(":")
                status_code = 200 if status == "ok" else int(status)
                self.send_response(status_code)
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"id": f"{account}-{body['key']}"}).encode())

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HttpGateway(Provider):
    """Posts each message to options["url"], as a real SMS API adapter would."""

    name = "http-gateway"
    channels = frozenset({"sms"})
    timeout = 0.3

    def send(self, delivery: Delivery) -> SendResult:
        try:
            response = httpx.post(
                self.config.options["url"], json={"key": delivery.idempotency_key, "to": delivery.to}, timeout=self.timeout
            )
        except httpx.ConnectError as error:  # the request never left
            raise ProviderError(f"connect: {error}", permanent=False) from error
        except httpx.TimeoutException as error:
            raise ProviderError("read timed out", permanent=False, ambiguous=True) from error
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            raise ProviderError(
                f"{response.status_code} from provider", permanent=False, retry_after=float(retry_after) if retry_after else None
            )
        if response.status_code >= 400:
            raise ProviderError(f"{response.status_code} invalid number", permanent=True)
        return SendResult(provider_message_id=response.json()["id"])


class IdempotentHttpGateway(HttpGateway):
    name = "idempotent-http-gateway"
    honours_idempotency_key = True


@pytest.fixture
def api():
    server = StubApi()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _registered(monkeypatch, settings):
    monkeypatch.setitem(PROVIDERS, HttpGateway.name, HttpGateway)
    monkeypatch.setitem(PROVIDERS, IdempotentHttpGateway.name, IdempotentHttpGateway)
    settings.CHORUS_RETRY_BASE_SECONDS = 2
    settings.CHORUS_RETRY_CAP_SECONDS = 60
    settings.CHORUS_RETRY_MAX_ATTEMPTS = 3
    settings.CHORUS_BREAKER_FAILURES = 2
    settings.CHORUS_BREAKER_COOLDOWN_SECONDS = 30
    yield
    forget_provider_configs()  # later tests in this process must not see these accounts


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ada(db):
    return Customer.objects.create(external_id="ada", phone="+14155550100")


def account(api, name: str, *, primary=False, order=1, adapter=HttpGateway, **options) -> ProviderConfig:
    config = ProviderConfig.objects.create(
        channel="sms", provider=adapter.name, label=name, is_primary=primary, failover_order=order,
        options={"url": f"{api.url}/{name}", **options},
    )
    forget_provider_configs()
    return config


def queue(customer, key="order:1", category="transactional") -> Message:
    request = QueueRequest(customer_id=customer.pk, channel="sms", category=category, idempotency_key=key, content=SMS)
    return do_queue_message(request).message


def reload(message: Message) -> Message:
    message.refresh_from_db()
    return message


# --- Backoff ----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_capped_exponential(settings):
    settings.CHORUS_RETRY_BASE_SECONDS, settings.CHORUS_RETRY_CAP_SECONDS = 2, 60
    rng = random.Random(7)

    for attempts, ceiling in [(0, 2), (1, 4), (2, 8), (4, 32), (5, 60), (12, 60)]:
        waits = [backoff_seconds(attempts, rng=rng) for _ in range(500)]
        assert 0 <= min(waits) and max(waits) <= ceiling
        assert max(waits) > ceiling * 0.9 and min(waits) < ceiling * 0.1  # spread over the whole range


def test_retry_after_is_a_floor_on_the_backoff(settings):
    assert backoff_seconds(0, 45.0, rng=random.Random(1)) == 45.0
    assert backoff_seconds(0, None, rng=random.Random(1)) < 2


# --- Transient failures -----------------------------------------------------------------------


def test_a_500_queues_the_message_again_within_the_backoff(db, api, ada, clock):
    account(api, "primary", primary=True)
    api.script("primary", "500")
    message = queue(ada)

    assert deliver(message.pk) == "queued"

    message = reload(message)
    assert (message.attempts, message.last_error, message.provider) == (1, "transient: 500 from provider", "")
    assert T0 <= message.next_attempt_at <= T0 + dt.timedelta(seconds=2)
    assert list(message.transitions.values_list("from_status", "to_status")) == [
        ("", "queued"), ("queued", "sending"), ("sending", "queued"),
    ]


def test_a_due_retry_is_sent_by_the_sweep_and_not_before(db, api, ada, clock):
    account(api, "primary", primary=True)
    api.script("primary", "500")
    message = queue(ada)
    deliver(message.pk)
    due = reload(message).next_attempt_at

    clock.move_to(due - dt.timedelta(milliseconds=1))
    assert recover_stranded(queued_older_than=dt.timedelta(0))["delivered"] == 0
    assert reload(message).status == "queued"

    clock.move_to(due)
    assert recover_stranded()["delivered"] == 1
    assert (reload(message).status, api.keys("primary")) == ("sent", ["order:1", "order:1"])


def test_retry_after_from_a_429_is_honoured(db, api, ada, clock):
    account(api, "primary", primary=True)
    api.script("primary", "429:120")
    message = queue(ada)

    deliver(message.pk)

    assert reload(message).next_attempt_at == T0 + dt.timedelta(seconds=120)


def test_after_max_attempts_the_message_fails(db, api, ada, clock, settings):
    settings.CHORUS_BREAKER_FAILURES = 10  # keep the circuit closed: this is about attempts
    account(api, "primary", primary=True)
    api.script("primary", "500", "500", "500", "ok")
    message = queue(ada)

    deliver(message.pk)
    for _ in range(2):
        clock.move_to(reload(message).next_attempt_at)
        recover_stranded()

    message = reload(message)
    assert (message.status, message.error) == ("failed", "transient: 500 from provider (after 3 attempts)")
    assert len(api.keys("primary")) == 3


# --- Failover and the circuit breaker ---------------------------------------------------------


def test_a_transient_error_fails_over_to_the_next_provider_in_the_same_attempt(db, api, ada, clock):
    account(api, "primary", primary=True)
    backup = account(api, "backup", order=1)
    api.script("primary", "503")
    message = queue(ada)

    assert deliver(message.pk) == "sent"

    message = reload(message)
    assert (message.provider, message.provider_config_id, message.attempts) == ("http-gateway", backup.pk, 0)
    assert (api.keys("primary"), api.keys("backup")) == (["order:1"], ["order:1"])


def test_a_permanent_error_fails_the_message_without_failover(db, api, ada, clock):
    account(api, "primary", primary=True)
    account(api, "backup", order=1)
    api.script("primary", "400")
    message = queue(ada)

    assert deliver(message.pk) == "failed"

    assert (reload(message).error, api.keys("backup")) == ("400 invalid number", [])


def test_an_open_breaker_skips_the_provider_and_fails_over(db, api, ada, clock):
    primary = account(api, "primary", primary=True)
    account(api, "backup", order=1)
    breaker = Breaker(f"http-gateway:{primary.pk}")
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    message = queue(ada)

    assert deliver(message.pk) == "sent"

    assert (api.keys("primary"), api.keys("backup")) == ([], ["order:1"])


def test_the_breaker_opens_after_consecutive_failures_and_probes_once_after_the_cool_down(db, clock):
    breaker = Breaker("http-gateway:1")
    assert breaker.state(T0) == "closed"
    breaker.record_failure(T0)
    assert breaker.state(T0) == "closed"
    breaker.record_failure(T0)

    assert (breaker.state(T0), breaker.allow(T0)) == ("open", False)
    later = T0 + dt.timedelta(seconds=30)
    assert breaker.state(later) == "half_open"
    assert [breaker.allow(later), breaker.allow(later)] == [True, False]  # one probe only
    breaker.record_failure(later)
    assert breaker.state(later + dt.timedelta(seconds=29)) == "open"
    breaker.record_success()
    assert breaker.state(later) == "closed"


def test_with_every_circuit_open_the_message_waits_without_using_an_attempt(db, api, ada, clock):
    primary = account(api, "primary", primary=True)
    Breaker(f"http-gateway:{primary.pk}").record_failure(T0)
    Breaker(f"http-gateway:{primary.pk}").record_failure(T0)
    message = queue(ada)

    assert deliver(message.pk) == "queued"

    message = reload(message)
    assert (message.attempts, message.last_error, api.received) == (0, "every provider's circuit is open", [])
    assert T0 + dt.timedelta(seconds=30) <= message.next_attempt_at <= T0 + dt.timedelta(seconds=45)


# --- Ambiguous outcomes -----------------------------------------------------------------------


def test_an_ambiguous_marketing_send_is_unknown_and_never_resent(db, api, ada, clock):
    account(api, "primary", primary=True)
    account(api, "backup", order=1)
    api.script("primary", "hang")
    message = queue(ada, key="promo:1", category="marketing")

    assert deliver(message.pk) == "unknown"
    clock.shift(dt.timedelta(hours=1))
    recover_stranded()

    assert (reload(message).status, reload(message).error) == ("unknown", "read timed out")
    assert (api.keys("primary"), api.keys("backup")) == (["promo:1"], [])


def test_an_ambiguous_transactional_send_is_resent_with_the_same_key_through_an_idempotent_provider(db, api, ada, clock):
    primary = account(api, "primary", primary=True, adapter=IdempotentHttpGateway)
    account(api, "backup", order=1)
    api.script("primary", "hang")
    message = queue(ada)

    assert deliver(message.pk) == "queued"
    message = reload(message)
    assert (message.provider, message.provider_config_id, message.attempts) == (
        "idempotent-http-gateway", primary.pk, 1,
    )
    clock.move_to(message.next_attempt_at)
    recover_stranded()

    assert reload(message).status == "sent"
    assert (api.keys("primary"), api.keys("backup")) == (["order:1", "order:1"], [])


def test_an_ambiguous_transactional_send_without_idempotency_is_unknown(db, api, ada, clock):
    account(api, "primary", primary=True)
    api.script("primary", "hang")
    message = queue(ada)

    assert deliver(message.pk) == "unknown"
    assert api.keys("primary") == ["order:1"]


# --- Rate limit -------------------------------------------------------------------------------


def test_sends_beyond_the_rate_wait_for_the_next_second(db, api, clock):
    account(api, "primary", primary=True, rate_per_second=2)
    messages = [queue(Customer.objects.create(external_id=f"c{i}", phone=f"+1415555010{i}"), key=f"k{i}") for i in range(3)]

    statuses = [deliver(m.pk) for m in messages]

    assert statuses == ["sent", "sent", "queued"]
    late = reload(messages[2])
    assert (late.attempts, late.next_attempt_at, late.last_error) == (
        0, T0 + dt.timedelta(seconds=1), "rate limit of http-gateway",
    )
    clock.move_to(late.next_attempt_at)
    recover_stranded()
    assert reload(late).status == "sent"
    assert MessageTransition.objects.filter(message=late, to_status="sent").count() == 1
