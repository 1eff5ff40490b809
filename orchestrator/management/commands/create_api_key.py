"""manage.py create_api_key NAME --scopes ingest,read [--source LABEL] [--rate-limit N]

Prints the clear key once, as the last line of output, so scripts can take ``tail -n 1``.
Only its hash is stored: a lost key is revoked and replaced, never recovered.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orchestrator.api_keys import do_create_api_key
from orchestrator.models import ApiScope


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Unique name, e.g. 'segment-prod'.")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"Comma-separated, any of: {', '.join(ApiScope.values)}.",
        )
        parser.add_argument("--source", default="", help="Event source label (defaults to the name).")
        parser.add_argument(
            "--rate-limit", type=int, default=None, dest="rate_limit",
            help="Requests per minute for this key (defaults to API_RATE_LIMIT_PER_MINUTE).",
        )

    def handle(self, *args, name: str, scopes: str, source: str, rate_limit: int | None, **options):
        scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        try:
            created = do_create_api_key(name, scope_list, source=source, rate_limit_per_minute=rate_limit)
        except ValueError as exc:
            raise CommandError(_option_message(str(exc))) from None
        key = created.api_key
        self.stdout.write(
            f"Created API key {key.name!r} (prefix {key.prefix}, scopes {', '.join(key.scopes)}, "
            f"source {key.source!r}, rate limit {key.rate_limit_per_minute or 'default'}/min)."
        )
        self.stdout.write("Store this key now; it will not be shown again:")
        self.stdout.write(created.clear_key)


def _option_message(message: str) -> str:
    """Name the command-line option for a service error that names the field."""
    field, _, reason = message.partition(": ")
    option = {"scopes": "--scopes", "rate_limit_per_minute": "--rate-limit", "name": "NAME"}.get(field)
    return f"{option}: {reason}" if option else message
