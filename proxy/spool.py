"""Spool files left by earlier versions, replayed into the ledger.

Versions before the hand-off queue (proxy.handoff) buffered usage in each
web worker and appended what the database could not take to
`<host>-<pid>-<start>.jsonl` under AISPENDTRACK_SPOOL_DIR. The ledger writer
(proxy.writer) replays such files once the database answers: it claims a
file by renaming it (atomic), writes its records through the idempotent
`usage_record_batch`, then deletes it. A failed replay renames the file
back, so a later replay finishes it: rows already written are skipped by
request_id, never counted twice. A process of an older version still
appending finds its file renamed and starts a fresh one (its append checks
the inode under the file's lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from analytics.records import UsageRecord
from config import fastjson
from proxy.ledger import is_outage

logger = logging.getLogger("aispendtrack.proxy")

SUFFIX = ".jsonl"
_RETRY = re.compile(r"\.r\d+$")  # the mark of a file put back after a failed replay
CLAIMED = ".claimed-"
REPLAY_BATCH = 500


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._host = socket.gethostname().replace("-", "_")

    def pending(self) -> list[Path]:
        """Spool files waiting for replay, own and other processes', oldest first."""
        try:
            entries = [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX)]
        except FileNotFoundError:
            return []
        return sorted(entries, key=lambda p: p.stat().st_mtime if p.exists() else 0)

    def replay(self, write: Callable[[Sequence[UsageRecord]], int]) -> int:
        """Write every spooled record through `write`; returns records replayed.

        Raises what `write` raises when the database went away again (the
        file being replayed is put back for the next attempt); a file failing
        for any other reason is put back and the replay goes on past it.
        """
        self._release_orphans()
        replayed = 0
        for path in self.pending():
            claimed = path.with_name(f"{path.name}{CLAIMED}{self._host}-{os.getpid()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # another process claimed it first
                continue
            try:
                replayed += self._replay_file(claimed, write)
            except BaseException as error:
                os.rename(claimed, self._fresh_name(path))
                if not isinstance(error, Exception) or is_outage(error):
                    raise
                # Not the database being away: this file has a problem of its
                # own. Keep it for later, and go on with the others.
                logger.error("spool file %s failed (%r); replaying the next ones", path.name, error)
                continue
            claimed.unlink()
        return replayed

    def _replay_file(self, claimed: Path, write) -> int:
        fd = os.open(claimed, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # wait out an append that was in flight
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
        finally:
            os.close(fd)
        records: list[UsageRecord] = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(UsageRecord.from_json(fastjson.loads(line)))
            except (ValueError, TypeError, KeyError):
                # Only a line cut by a crash mid-write can be malformed.
                logger.error("spool %s line %d unreadable; skipped", claimed.name, number)
        for start in range(0, len(records), REPLAY_BATCH):
            write(records[start : start + REPLAY_BATCH])
        if records:
            logger.info("replayed %d spooled usage records from %s", len(records), claimed.name)
        return len(records)

    @staticmethod
    def _fresh_name(path: Path) -> Path:
        # Never back onto the original name: its owner may have started a new
        # file there since, and a rename would replace it.
        stem = _RETRY.sub("", path.name[: -len(SUFFIX)])
        return path.with_name(f"{stem}.r{time.time_ns()}{SUFFIX}")

    def _release_orphans(self) -> None:
        """Put back files claimed by a process of this host that died mid-replay."""
        prefix = f"{CLAIMED}{self._host}-"
        for path in self.directory.glob(f"*{SUFFIX}{CLAIMED}*"):
            owner = path.name.rpartition(prefix)[2]
            if not owner.isdigit() or int(owner) == os.getpid():
                continue
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:
                original = path.with_name(path.name.partition(CLAIMED)[0])
                with contextlib.suppress(FileNotFoundError):
                    os.rename(path, self._fresh_name(original))
            except PermissionError:
                pass  # alive, someone else's
