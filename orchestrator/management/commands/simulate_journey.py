"""Simulate a journey for one customer and a script of events; print the timeline.

    manage.py simulate_journey "Cart recovery" --inline '{"timezone": "America/New_York", "phone": "+12125550117"}' \\
        --events '[{"at": "+0m", "name": "Cart Abandoned", "properties": {"cart_value": 280}}]' --start 2026-11-24T21:14-05:00

Nothing is stored and nothing is sent (see orchestrator.engine.simulator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from journeys import graph as graphs
from journeys.models import Journey
from orchestrator.engine.simulator import (
    SimulationInputError,
    SimulationResult,
    parse_simulation,
    simulate,
)
from orchestrator.engine.timing import customer_zone

SUMMARY_WIDTH = 70


class Command(BaseCommand):
    help = "Run a journey's draft (else live) graph for one customer and scripted events, persisting nothing."

    def add_arguments(self, parser):
        parser.add_argument("journey", help="The journey's id or name.")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--customer", metavar="EXT_ID", help="An existing customer's external id.")
        who.add_argument("--inline", metavar="JSON", help='A customer described inline: {"timezone", "email", "phone", "traits", "push"}.')
        parser.add_argument("--events", metavar="JSON", default="[]", help="The scripted events as JSON, or @path to a JSON file.")
        parser.add_argument("--start", metavar="ISO", help="When the simulation starts (default: now).")
        parser.add_argument("--until", metavar="ISO", help="When it ends: an ISO time or an offset like +7d (default +30d).")
        parser.add_argument("--trigger", metavar="JSON", help="Trigger properties, for API-entry journeys.")
        parser.add_argument("--holdout", action="store_true", help="Simulate a control-group entrant.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        journey = _journey(options["journey"])
        try:
            result = simulate(journey, parse_simulation(_request(options)))
        except SimulationInputError as exc:
            raise CommandError("Invalid simulation:\n" + "\n".join(f"  {f or '(input)'}: {r}" for f, r in exc.fields)) from None
        except graphs.InvalidGraph as exc:
            raise CommandError("The graph cannot be simulated:\n" + "\n".join(f"  {p.path}: {p.message}" for p in exc.problems)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(render(journey, result)))


def _journey(ref: str) -> Journey:
    journey = Journey.objects.select_related("live_version").filter(name=ref).first()
    if journey is None and ref.isdigit():
        journey = Journey.objects.select_related("live_version").filter(pk=int(ref)).first()
    if journey is None:
        raise CommandError(f"No journey has the id or name {ref!r}.")
    return journey


def _json_option(value: str, option: str) -> Any:
    """JSON text, or @path to a file holding it."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {value[1:]!r} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option}: not valid JSON ({exc})") from None


def _request(options: dict) -> dict:
    customer = {"external_id": options["customer"]} if options["customer"] else {"inline": _json_option(options["inline"], "--inline")}
    data: dict[str, Any] = {"customer": customer, "events": _json_option(options["events"], "--events"), "holdout": options["holdout"]}
    for key in ("start", "until"):
        if options[key]:
            data[key] = options[key]
    if options["trigger"]:
        data["trigger"] = _json_option(options["trigger"], "--trigger")
    return data


# --- Rendering -------------------------------------------------------------------------------


def render(journey: Journey, result: SimulationResult) -> list[str]:
    """One line per timeline entry, in the customer's local time, then the summary."""
    summary = result.summary
    zone = customer_zone(summary["customer"]["timezone"])
    version = summary["version"]
    who = summary["customer"]["external_id"] or "an inline customer"
    lines = [f"{journey.name} v{version['number']} ({'draft' if version['draft'] else 'published'}) for {who}, times in {zone.key}:"]
    for entry in result.timeline:
        when = entry["at"].astimezone(zone).strftime("%a %Y-%m-%d %H:%M")
        lines.append(f"  {when}  {_entry_line(entry)}".rstrip())
    return lines + _summary_lines(summary)


def _entry_line(entry: dict) -> str:
    if entry["kind"] == "event":
        return f"{'event':<16} {entry['name']} {json.dumps(entry['properties'], ensure_ascii=False)}"
    message = entry["message"]
    # A send's detail is its channel, which the message summary already names.
    detail = "" if message and entry["detail"] == message["channel"] else entry["detail"]
    parts = [f"{entry['node_id']:<16}", f"{entry['outcome']:<10}", detail]
    if message:
        parts.append(f"→ {_message_line(message)}")
    return " ".join(part for part in parts if part)


def _message_line(message: dict) -> str:
    content = message["content"] or {}
    text = str(content.get("subject") or content.get("title") or content.get("body") or "")
    if content.get("title") and content.get("body"):
        text = f"{content['title']} / {content['body']}"
    if len(text) > SUMMARY_WIDTH:
        text = text[: SUMMARY_WIDTH - 1] + "…"
    return f"{message['channel']} {message['status']}: {text!r}"


def _summary_lines(summary: dict) -> list[str]:
    if not summary["entered"]:
        return [f"Not entered: {summary.get('note', '')}"]
    if summary["exited"]:
        outcome = f"exited ({summary['exit_reason']})"
    else:
        outcome = f"still inside at {summary['current_node']} ({summary['state']})"
    lines = [f"Outcome: {outcome}"]
    if summary["converted"]:
        touches = " → ".join(summary["touch_sequence"]) or "no message"
        lines.append(f"Converted: {summary['conversion_value'] if summary['conversion_value'] is not None else 'yes'} after {touches}")
    lines.append(f"Path: {' → '.join(summary['path'])}")
    if summary["truncated"]:
        lines.append("Cut short: too many moments; narrow --until.")
    return lines
