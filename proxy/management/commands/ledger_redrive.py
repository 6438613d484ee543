"""`manage.py ledger_redrive`: write the dead-lettered usage records again.

Run it after fixing what made the database refuse them (the ERROR log line
and each line's "error" say what). Records still refused go back to a fresh
dead-letter file; records already in the ledger are skipped (request_id), so
running it twice counts nothing twice.
"""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analytics.records import UsageRecord
from proxy.ledger import DeadLetters, IsolatingWriter, is_outage

BATCH = 500


class Command(BaseCommand):
    help = "Re-drive dead-lettered usage records (var/spool/dead/) into the ledger."

    def handle(self, *args, **options) -> None:
        dead = DeadLetters(settings.AISPENDTRACK_SPOOL_DIR)
        writer = IsolatingWriter(dead)
        written = unreadable = total = 0
        for path in dead.files():
            if path.name == dead.name:
                continue
            claimed = path.with_name(path.name + f".redrive-{os.getpid()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue
            records = []
            for line in claimed.read_bytes().splitlines():
                if not line.strip():
                    continue
                try:
                    records.append(UsageRecord.from_json(json.loads(line)["record"]))
                except (ValueError, TypeError, KeyError):
                    unreadable += 1
            total += len(records)
            try:
                for start in range(0, len(records), BATCH):
                    written += writer(records[start : start + BATCH])
            except Exception as error:
                os.rename(claimed, path)
                if is_outage(error):
                    message = f"the database is unreachable ({error}); retry later"
                    raise CommandError(message) from error
                raise
            claimed.unlink()
        self.stdout.write(
            f"{total} dead-lettered records: {written} written, "
            f"{total - written - writer.dead_lettered - writer.dropped} already in the ledger, "
            f"{writer.dropped} dropped (organization deleted), "
            f"{writer.dead_lettered} still refused (see {dead.directory})"
            + (f", {unreadable} unreadable lines" if unreadable else "")
        )
