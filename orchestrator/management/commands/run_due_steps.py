"""Process every journey step due now, deliver stranded messages, and exit."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from channels_app.delivery import recover_stranded
from orchestrator.engine.runner import run_due


class Command(BaseCommand):
    help = "Run every journey step that is due now (and resend messages a dead worker stranded), then exit."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="Enrollments claimed per transaction.")

    def handle(self, *args, batch_size=None, **options):
        stats = run_due(batch_size=batch_size)
        swept = recover_stranded()
        self.stdout.write(
            f"{stats.steps} steps for {stats.enrollments} enrollments in {stats.batches} batches; "
            f"{stats.messages} messages queued; stranded messages: {swept}"
        )
