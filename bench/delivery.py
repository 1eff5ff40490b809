"""Delivery under failure: no duplicates and nothing lost with ambiguous timeouts; far
fewer calls than a naive retry loop while a provider is down.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chorus_bench .venv/bin/python bench/delivery.py [--quick]

A local HTTP server stands in for an SMS provider (a bench-only adapter calls it with
httpx and a timeout). Phase 1 queues 10,000 messages (1,000 with ``--quick``), half
marketing, half transactional, and two worker threads deliver them through the real path
(ledger claim, retries, breaker: ``recover_stranded``) while the server answers 3% of
requests with a 500 and, for 2%, records the message and then does not answer in time
(an ambiguous timeout). The server honours the idempotency key for transactional
messages only (as a transactional API does), so a marketing resend would show up as a
duplicate. ``duplicates``: messages the server delivered more than once; ``lost``:
messages neither delivered nor settled as failed/unknown, or marked sent but never
received.

Phase 2: the provider answers 503 to everything for a few seconds while messages keep
coming. ``calls_over_naive``: the calls our breaker and backoff made, over the calls of a
naive loop retrying each message every 100 ms until it goes (computed: each message
costs one call per 100 ms of outage it waited through, plus the one that succeeds).

Prints ``name: value`` lines. The breaker's state is in Redis (REDIS_URL, default
redis://127.0.0.1:6379/0), as in production.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chorus_bench"
PREFIX = "dlvbench-"
HANG_RATE, ERROR_RATE = 0.02, 0.03
CLIENT_TIMEOUT_S = 0.2
NAIVE_INTERVAL_S = 0.1
WORKERS = 2


class FlakyApi:
    """The provider: delivers, fails (500), or receives and hangs; or is down (503)."""

    def __init__(self, seed: int = 7):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.delivered: Counter[str] = Counter()  # key → times delivered to the customer
        self.calls = 0
        self.down = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, body: dict) -> str:
        with self.lock:
            self.calls += 1
            if self.down:
                return "503"
            roll = self.rng.random()
            if roll < ERROR_RATE:
                return "500"
            # Transactional: the provider honours the idempotency key, delivering once.
            if not (body["category"] == "transactional" and self.delivered[body["key"]]):
                self.delivered[body["key"]] += 1
            return "hang" if roll < ERROR_RATE + HANG_RATE else "200"

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = api._answer(body)
                if answer == "hang":
                    time.sleep(CLIENT_TIMEOUT_S * 2)
                    self.close_connection = True
                    return
                payload = json.dumps({"id": body["key"]}).encode()
                self.send_response(int(answer))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        return Handler


def register_adapter(url: str) -> None:
    import httpx
    from django.conf import settings

    from channels_app.providers import PROVIDERS, Provider, ProviderError, SendResult

    class BenchGateway(Provider):
        name = "bench-gateway"
        channels = frozenset({"sms"})
        honours_idempotency_key = True
        timeout = CLIENT_TIMEOUT_S

        def __init__(self, config=None):
            super().__init__(config)
            self.client = httpx.Client(timeout=self.timeout)

        def send(self, delivery):
            body = {"key": delivery.idempotency_key, "category": delivery.category, "to": delivery.to}
            try:
                response = self.client.post(url, json=body)
            except httpx.ConnectError as error:
                raise ProviderError(f"connect: {error}", permanent=False) from error
            except httpx.TransportError as error:  # timed out or dropped after sending
                raise ProviderError(f"{type(error).__name__}", permanent=False, ambiguous=True) from error
            if response.status_code >= 500:
                raise ProviderError(f"{response.status_code}", permanent=False)
            return SendResult(provider_message_id=response.json()["id"])

    PROVIDERS[BenchGateway.name] = BenchGateway
    settings.CHORUS_PROVIDERS = {**settings.CHORUS_PROVIDERS, "sms": BenchGateway.name}
    settings.CHORUS_RETRY_BASE_SECONDS, settings.CHORUS_RETRY_CAP_SECONDS = 1, 2
    settings.CHORUS_RETRY_MAX_ATTEMPTS = 10
    settings.CHORUS_BREAKER_FAILURES, settings.CHORUS_BREAKER_COOLDOWN_SECONDS = 5, 1


def delete_bench_data() -> None:
    from channels_app.models import Message
    from customers.models import Customer

    Message.objects.filter(customer__external_id__startswith=PREFIX).delete()
    Customer.objects.filter(external_id__startswith=PREFIX).delete()


def queue(count: int, run: str, offset: int = 0) -> list[int]:
    from django.db import transaction

    from channels_app.ledger import QueueRequest, queue_many
    from customers.models import Customer

    customers = Customer.objects.bulk_create(
        Customer(external_id=f"{PREFIX}{run}-{offset + i}", phone=f"+1415{(offset + i):07d}") for i in range(count)
    )
    requests = [
        (QueueRequest(
            customer_id=c.pk, channel="sms", category="marketing" if i % 2 else "transactional",
            idempotency_key=f"{PREFIX}{run}-{offset + i}", content={"body": "Your order shipped. Reply STOP to opt out"},
        ), "")
        for i, c in enumerate(customers)
    ]
    with transaction.atomic():
        return [m.pk for m in queue_many(requests)]


def drain(ids: list[int], deadline_s: float) -> None:
    """Two workers sweep due messages until none is queued or sending."""
    from django.db import connection

    from channels_app.delivery import recover_stranded
    from channels_app.models import Message

    def open_ids() -> int:
        return Message.objects.filter(pk__in=ids, status__in=["queued", "sending"]).count()

    def work():
        try:
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                counts = recover_stranded(queued_older_than=timedelta(0), sending_older_than=timedelta(seconds=30))
                if not counts["delivered"]:
                    if not open_ids():
                        return
                    time.sleep(0.05)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def settle_figures(ids: list[int], api: FlakyApi) -> dict[str, int]:
    from channels_app.models import Message

    rows = list(Message.objects.filter(pk__in=ids).values_list("idempotency_key", "status"))
    statuses = Counter(status for _, status in rows)
    duplicates = sum(1 for key, _ in rows if api.delivered[key] > 1)
    unsettled = sum(1 for _, status in rows if status not in {"sent", "failed", "unknown"})
    sent_unreceived = sum(1 for key, status in rows if status == "sent" and not api.delivered[key])
    return {
        "sends": len(rows), "duplicates": duplicates, "lost": unsettled + sent_unreceived,
        "sent": statuses["sent"], "unknown": statuses["unknown"], "failed": statuses["failed"],
    }


def outage(api: FlakyApi, run: str, count: int, down_s: float) -> dict[str, float]:
    """``count`` messages queued while the provider is down for ``down_s`` seconds."""
    calls_before = api.calls
    api.down = True
    ids = queue(count, run, offset=10_000_000)
    started = time.monotonic()
    threading.Timer(down_s, lambda: setattr(api, "down", False)).start()
    drain(ids, deadline_s=down_s + 60)
    ours = api.calls - calls_before
    # The naive loop: every message retried every 100 ms from the start of the outage.
    naive = count * (math.ceil(down_s / NAIVE_INTERVAL_S) + 1)
    return {"outage_calls": ours, "naive_calls": naive, "calls_over_naive": ours / naive,
            "outage_drain_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sends and a 2 s outage; within 60 s")
    args = parser.parse_args()
    sends = 1_000 if args.quick else 10_000

    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    url = h.database_url()
    h.ensure_database(url)
    env = h.server_env(url)
    env["LOG_LEVEL"] = "ERROR"
    h.manage(env, "migrate", "--noinput")
    h.setup_django(env)
    import logging

    logging.disable(logging.CRITICAL)  # expected failures log warnings by the thousand
    api = FlakyApi()
    register_adapter(api.url)
    run = os.urandom(4).hex()
    delete_bench_data()
    from django.core.cache import cache

    cache.delete_many([f"breaker:bench-gateway:0:{part}" for part in ("failures", "opened_at", "probe")])
    try:
        started = time.monotonic()
        ids = queue(sends, run)
        drain(ids, deadline_s=600)
        figures: dict[str, float] = {**settle_figures(ids, api), "drain_s": time.monotonic() - started}
        figures.update(outage(api, run, 100 if args.quick else 500, 2.0 if args.quick else 5.0))
    finally:
        delete_bench_data()
        api.server.shutdown()
    for name, value in figures.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
