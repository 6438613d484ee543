"""`python manage.py rollups_fold [--loop] [--interval SECONDS]`."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from analytics.fold import daily_rollups_rebuild_pending, rollups_fold_until_done

logger = logging.getLogger("analytics.fold")


class Command(BaseCommand):
    help = (
        "Fold pending hourly deltas into the derived rollups (coarse, daily, per customer) "
        "and re-key the daily tables of organizations whose time zone changed. With --loop, "
        "keep doing it every AISPENDTRACK_FOLD_INTERVAL seconds (make run / make serve "
        "start it beside the web workers); several folders at once are safe."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
        parser.add_argument("--interval", type=float, default=None)

    def handle(self, *args, loop=False, interval=None, **options):
        interval = interval or settings.AISPENDTRACK_FOLD_INTERVAL
        if not loop:
            folded = rollups_fold_until_done()
            rebuilt = daily_rollups_rebuild_pending()
            self.stdout.write(f"folded {folded} deltas; re-keyed {len(rebuilt)} organization(s)")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        # Zone rebuilds run beside the fold: a big one never delays other
        # organizations' fold (it holds only its own organization's lock).
        rebuilder = threading.Thread(
            target=_every, args=(stop, interval * 5, daily_rollups_rebuild_pending), daemon=True
        )
        rebuilder.start()
        logger.info("rollups fold running every %.1f s", interval)
        _every(stop, interval, rollups_fold_until_done)
        rebuilder.join(timeout=30)


def _every(stop: threading.Event, interval: float, work) -> None:
    """Run `work` every `interval` seconds until `stop`; a failure (database
    down) is logged once per streak and retried on the next tick."""
    failing = False
    while not stop.is_set():
        try:
            work()
            if failing:
                logger.warning("%s works again", work.__name__)
            failing = False
        except Exception:
            if not failing:
                logger.exception("%s failed; retrying every %.1f s", work.__name__, interval)
            failing = True
            connection.close()
        stop.wait(interval)
    connection.close()
