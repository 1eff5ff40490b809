#!/usr/bin/env python
"""Ingestion throughput and latency on PostgreSQL, server started the way production runs it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chorus_bench .venv/bin/python bench/ingest.py [--quick]

Starts uvicorn (several worker processes) on the database from DATABASE_URL (created and
migrated if needed) with Redis for the shared cache when reachable, then drives
/api/v1/track (one event per request) and /api/v1/batch (100 events per request) from this
process over loopback. Prints each figure as `name: value`.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

CUSTOMERS = 20_000


def track_item(run: str, n: int) -> dict:
    return {
        "type": "track",
        "userId": f"bench-{n % CUSTOMERS}",
        "event": "Product Viewed",
        "messageId": f"{run}-{n}",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"sku": f"SKU-{n % 977}", "price": 49.5, "category": "dresses"},
    }


def create_key(env: dict[str, str]) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    out = h.manage(env, "create_api_key", name, "--scopes", "ingest", "--rate-limit", "100000000")
    return out.strip().splitlines()[-1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="short phases; finishes within 60 s")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "3")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "4")))
    parser.add_argument("--seconds", type=float, default=None, help="duration of each phase")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for the single-event phase")
    args = parser.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 30.0)

    url = h.database_url()
    h.ensure_database(url)
    env = h.server_env(url)
    h.manage(env, "migrate", "--noinput")
    h.manage(env, "collectstatic", "--noinput")
    key = create_key(env)
    run = uuid.uuid4().hex[:10]
    port = h.free_port()

    with h.production_server(env, port, args.workers, args.threads):
        # Warm each worker's connections and code paths before measuring.
        h.load(port, "/api/v1/track", key, lambda n: h.dumps(track_item(run + "w", n)), concurrency=8, seconds=2)

        lat, errors, elapsed = h.load(
            port, "/api/v1/track", key, lambda n: h.dumps(track_item(run + "s", n)), concurrency=args.concurrency, seconds=seconds
        )
        single = {
            "single_requests_per_s": len(lat) / elapsed,
            "single_p50_ms": h.percentile(lat, 50) * 1000,
            "single_p99_ms": h.percentile(lat, 99) * 1000,
            "single_errors": len(errors),
        }

        def batch_body(n: int) -> bytes:
            return h.dumps({"batch": [track_item(run + "b", n * 100 + i) for i in range(100)]})

        lat, errors, elapsed = h.load(port, "/api/v1/batch", key, batch_body, concurrency=6, seconds=seconds)
        batch = {
            "batch_events_per_s": len(lat) * 100 / elapsed,
            "batch_p50_ms": h.percentile(lat, 50) * 1000,
            "batch_p99_ms": h.percentile(lat, 99) * 1000,
            "batch_errors": len(errors),
        }

    print(f"server_workers: {args.workers}")
    for name, value in {**single, **batch}.items():
        print(f"{name}: {value:.1f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
