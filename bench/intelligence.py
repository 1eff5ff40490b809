#!/usr/bin/env python
"""Channel affinity and send-time optimisation, measured on a simulator with known truth.

    .venv/bin/python bench/intelligence.py [--quick] [--customers N] [--days D] [--seed S] [--diagnose]

Unlike the other benchmarks this one needs no database and no server: the models are pure
functions and the harness (``orchestrator.intelligence.harness``) feeds them plain values,
so nothing here touches PostgreSQL or Django settings. It runs in this one process.

A population with hidden true channel preferences and active hours
(``orchestrator.intelligence.simulate``) receives a third of the days of business-as-usual
sends (random channel, random daytime hour), which the models read as history; then four
policies decide the remaining occasions on the same luck: the models (best channel + best
time, exploring 5% of decisions, a send node's default), email at 10:00 local, a random channel at 10:00 local,
and the oracle (true best channel at its true best allowed hour). Quiet hours are the
governor's shipped ones for every policy.

Full run: 5,000 customers × 90 days (30 of history). ``--quick``: 1,000 customers × 60 days
(20 of history), within 60 s. Fixed seed. Prints each figure as ``name: value``:
``best_channel_accuracy`` (aim ≥ 0.90), ``lift_share_of_oracle`` (aim ≥ 0.80),
``cold_start_accuracy`` (must be 1.00), the engagement rate of each policy, and diagnostics.

``--diagnose`` runs the same scenario three more times with the model handed part of the
truth (never in the figures above): ``lift_share_knowing_channel`` (true rates instead of
learned affinity), ``lift_share_knowing_time`` (true activity instead of the learned
profile) and ``lift_share_knowing_both``. What each adds is what learning it costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.intelligence.harness import run  # noqa: E402
from orchestrator.intelligence.scenario import HarnessConfig  # noqa: E402

SEED = 20260501
DIAGNOSES = {
    "channel": frozenset({"channel"}),
    "time": frozenset({"time"}),
    "both": frozenset({"channel", "time"}),
}


def config(args: argparse.Namespace) -> HarnessConfig:
    customers = args.customers or (1_000 if args.quick else 5_000)
    days = args.days or (60 if args.quick else 90)
    return HarnessConfig(
        customers=customers,
        days=days,
        history_days=days // 3,
        cold_start_customers=max(100, customers // 10),
        seed=args.seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 customers × 60 days; within 60 s"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=None,
        help="simulated customers (default 5,000; 1,000 with --quick)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=None,
        help="simulated days (default 90; 60 with --quick), a third of them history",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also measure the lift when the model is handed the true channel rates and/or hours",
    )
    args = parser.parse_args()
    settings = config(args)
    started = time.perf_counter()
    result = run(settings)
    print(f"customers: {settings.customers}")
    print(f"days: {settings.days}")
    print(f"history_days: {settings.history_days}")
    for line in result.lines():
        print(line)
    if args.diagnose:
        for name, reveal in DIAGNOSES.items():
            known = run(replace(settings, reveal=reveal))
            print(f"lift_share_knowing_{name}: {known.lift_share_of_oracle:.2f}")
    print(f"elapsed_s: {time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
