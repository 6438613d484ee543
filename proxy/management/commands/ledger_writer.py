"""`manage.py ledger_writer`: write the web workers' hand-off queue into the ledger.

One per host, beside the web workers (`make run` and `make serve` start it).
Several on one host share the queue files without taking the same one; each
host of a multi-host deployment runs its own (proxy.writer). SIGTERM (or
SIGINT unless ignored): the pass in flight finishes, what is left is written
(for up to 2 s; the rest waits for the next start), and it exits.
"""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from proxy.ledger import is_outage
from proxy.writer import LedgerWriter


class Command(BaseCommand):
    help = "Write usage records handed off by the web workers (var/queue/) into the ledger."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="write what is waiting now, then exit (drain a host before retiring it)",
        )

    def handle(self, *args, **options) -> None:
        writer = LedgerWriter(
            queue_dir=settings.AISPENDTRACK_QUEUE_DIR,
            spool_dir=settings.AISPENDTRACK_SPOOL_DIR,
            batch=int(settings.AISPENDTRACK_FLUSH_MAX_EVENTS),
            write_timeout=float(settings.AISPENDTRACK_LEDGER_WRITE_TIMEOUT),
        )
        try:
            if options["once"]:
                self._once(writer)
            else:
                self._loop(writer)
        finally:
            writer.close()

    def _once(self, writer: LedgerWriter) -> None:
        try:
            written = writer.drain()
        except Exception as error:
            if is_outage(error):
                raise CommandError(f"the database is unreachable ({error}); retry later") from error
            raise
        self.stdout.write(f"{written} usage records written")

    def _loop(self, writer: LedgerWriter) -> None:
        stop = threading.Event()

        def stopping(signum, frame) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        # Started in the background by make, Ctrl-C is ignored (the shell's rule
        # for background jobs): make stops it with TERM after the web workers.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, stopping)
        interval = float(settings.AISPENDTRACK_FLUSH_INTERVAL)
        self.stdout.write(
            f"ledger writer: {settings.AISPENDTRACK_QUEUE_DIR} → the ledger every {interval:g} s"
        )
        self.stdout.flush()
        writer.run(stop, interval=interval)
        self.stdout.write("ledger writer stopped")
