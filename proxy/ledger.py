"""Writing records to the ledger so that one bad record never costs another's.

Two kinds of failure, told apart by `is_outage`:
- the database is unreachable or too slow (connection refused or lost, a
  timeout): nothing is wrong with the records; the caller keeps them (they
  stay in the hand-off queue) and tries again later;
- the database refuses the data (DataError, IntegrityError, an encoding
  error, a bug in the write path): retrying the same batch fails forever. The
  batch is bisected so every good record is written, and a record refused on
  its own goes to the dead-letter file (`<spool>/dead/`), logged as ERROR,
  counted on /healthz, and re-driven by `manage.py ledger_redrive` once the
  cause is fixed.

Sync code, run in the ledger writer (proxy.writer) or a management command.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from django.db import InterfaceError, OperationalError, ProgrammingError

from accounts.models import ApiKey, Organization
from analytics.records import UsageRecord

logger = logging.getLogger("aispendtrack.proxy")

DEAD_DIR = "dead"
SUFFIX = ".jsonl"

Write = Callable[[Sequence[UsageRecord]], int]


def ledger_write(records: Sequence[UsageRecord]) -> int:
    from analytics.services import usage_record_batch

    return usage_record_batch(records)


def is_outage(error: BaseException) -> bool:
    """True when the database could not be used at all (keep the records and
    retry); False when it refused these records (isolate them).

    ProgrammingError counts as an outage: a missing table or column is a
    deployment problem that no record causes, and dead-lettering every record
    for it would only move the whole ledger aside.
    """
    return isinstance(
        error, OperationalError | InterfaceError | ProgrammingError | OSError | TimeoutError
    )


class DeadLetters:
    """`<spool>/dead/*.jsonl`: records the database refused one by one."""

    def __init__(self, spool_dir: Path) -> None:
        self.directory = Path(spool_dir) / DEAD_DIR
        host = socket.gethostname().replace("-", "_")
        self.name = f"{host}-{os.getpid()}-{time.time_ns()}{SUFFIX}"

    def add(self, record: UsageRecord, error: BaseException) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = {
            "record": record.to_json(),
            "error": f"{type(error).__name__}: {error}"[:2000],
            "at": datetime.now(UTC).isoformat(),
        }
        with open(self.directory / self.name, "ab") as handle:
            handle.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        logger.error(
            "usage record %s (organization %s) refused by the database: %s; kept in %s, "
            "re-drive it with `manage.py ledger_redrive` once fixed",
            record.request_id,
            record.organization_id,
            line["error"],
            self.directory / self.name,
        )

    def files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []


def dead_letter_count(spool_dir: Path) -> int:
    """Records waiting in the dead-letter files (for /healthz)."""
    count = 0
    for path in DeadLetters(spool_dir).files():
        try:
            with open(path, "rb") as handle:
                count += sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            continue
    return count


class IsolatingWriter:
    """`write` with fault isolation: returns events written; raises only on an outage."""

    def __init__(self, dead: DeadLetters, write: Write = ledger_write) -> None:
        self.dead = dead
        self._write = write
        self.dead_lettered = self.dropped = 0

    def __call__(self, records: Sequence[UsageRecord], *, repaired: bool = False) -> int:
        if not records:
            return 0
        try:
            return self._write(records)
        except Exception as error:
            if is_outage(error):
                raise
            if len(records) == 1:
                return self._alone(records[0], error)
            if not repaired and (kept := self._without_vanished_owners(records)) is not None:
                # A deleted key or organization refuses the whole batch: mended
                # in two reads, not found by bisecting (~2 writes a record).
                return self(kept, repaired=True)
            logger.warning(
                "ledger batch of %d refused (%s: %s); bisecting to isolate the bad records",
                len(records),
                type(error).__name__,
                error,
            )
            middle = len(records) // 2
            return self(records[:middle]) + self(records[middle:])

    def _without_vanished_owners(self, records: Sequence[UsageRecord]) -> list | None:
        """The batch without the records of deleted organizations and with the
        keys deleted since the calls unset (as `on_delete=SET_NULL` would have
        done); None if every owner still exists."""
        org_ids = {r.organization_id for r in records}
        key_ids = {r.api_key_id for r in records if r.api_key_id is not None}
        orgs = set(Organization.objects.filter(pk__in=org_ids).values_list("pk", flat=True))
        keys = set(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", flat=True))
        if orgs == org_ids and keys == key_ids:
            return None
        kept = []
        for record in records:
            if record.organization_id not in orgs:
                self._drop(record)
                continue
            if record.api_key_id is not None and record.api_key_id not in keys:
                record.api_key_id = None  # the key was deleted since: keep the call
            kept.append(record)
        return kept

    def _drop(self, record: UsageRecord) -> None:
        self.dropped += 1
        logger.warning(
            "usage record %s dropped: organization %s no longer exists",
            record.request_id,
            record.organization_id,
        )

    def _alone(self, record: UsageRecord, error: Exception) -> int:
        """One record refused on its own: a vanished owner, or a dead letter."""
        kept = self._without_vanished_owners([record])
        if kept is not None:
            if not kept:  # its organization is gone (logged)
                return 0
            try:
                return self._write(kept)
            except Exception as again:
                if is_outage(again):
                    raise
                error = again
        self.dead_lettered += 1
        self.dead.add(record, error)
        return 0
