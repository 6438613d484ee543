"""Bounding every database wait, even when the database never answers.

A connect timeout (settings: AISPENDTRACK_DB_CONNECT_TIMEOUT) bounds opening a
connection, and PostgreSQL's statement_timeout bounds a query the server is
running. Neither helps when the network path black-holes an open connection
(the server, or a relay, stops answering without closing): the client then
waits on its socket forever. `db_deadline` bounds that wait from our side: if
the block is still running after `seconds`, a timer shuts the connection's
socket down, the blocked call fails at once with OperationalError, and the
caller treats it as an outage.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

from django.db import connections


@contextlib.contextmanager
def db_deadline(seconds: float, alias: str = "default") -> Iterator[None]:
    """Run the block on this thread's connection for at most `seconds`."""
    wrapper = connections[alias]
    timer = threading.Timer(seconds, _sever, (wrapper,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _sever(wrapper) -> None:
    """Shut down the socket under `wrapper` (from another thread); the thread
    blocked on it wakes with a connection error. PostgreSQL only: SQLite has
    no socket and its waits are bounded by its busy timeout."""
    raw = wrapper.connection
    if raw is None or wrapper.vendor != "postgresql":
        return
    with contextlib.suppress(Exception):
        fd = os.dup(raw.pgconn.socket)
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)
