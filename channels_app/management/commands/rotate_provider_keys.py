"""Re-encrypt every provider account's secrets under the newest key in CHORUS_SECRET_KEYS.

Rotation: put the new key first in CHORUS_SECRET_KEYS (keep the old one after it),
restart, run this, then drop the old key. Running it again changes nothing that matters:
tokens already under the newest key are simply re-encrypted under it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.crypto import multi_fernet, rotate_token
from channels_app.models import ProviderConfig
from channels_app.providers import forget_provider_configs


def do_rotate_provider_keys() -> int:
    """Every row re-encrypted in one transaction (all or none); returns how many rows hold secrets."""
    multi_fernet()  # a malformed or missing key fails here, even with nothing to rotate
    with transaction.atomic():
        rows = list(ProviderConfig.objects.select_for_update().exclude(secrets_encrypted="").order_by("pk"))
        for row in rows:
            row.secrets_encrypted = rotate_token(row.secrets_encrypted)
        ProviderConfig.objects.bulk_update(rows, ["secrets_encrypted"])
        transaction.on_commit(forget_provider_configs)
    return len(rows)


class Command(BaseCommand):
    help = "Re-encrypt every provider secret under the newest key in CHORUS_SECRET_KEYS."

    def handle(self, *args, **options):
        count = do_rotate_provider_keys()
        self.stdout.write(f"Re-encrypted the secrets of {count} provider configuration(s) under the newest key.")
