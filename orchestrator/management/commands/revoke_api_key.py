"""manage.py revoke_api_key NAME: the key stops authenticating at once (401)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orchestrator.api_keys import do_revoke_api_key
from orchestrator.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key by name."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        api_key = ApiKey.objects.filter(name=name).first()
        if api_key is None:
            raise CommandError(f"NAME: no API key named {name!r}")
        if api_key.revoked_at is not None:
            self.stdout.write(f"API key {name!r} was already revoked at {api_key.revoked_at:%Y-%m-%d %H:%M} UTC.")
            return
        do_revoke_api_key(api_key)
        self.stdout.write(f"Revoked API key {name!r} (prefix {api_key.prefix}).")
