"""Making the ledger database unreachable for the code under test, for real.

PostgreSQL: the proxy's connections go through a TCP relay that the test
cuts (every connection dropped, new ones refused), black-holes (nothing
closed, nothing forwarded: the hardest case for a client) and restores. SQLite: a
second connection holds an exclusive lock, so writes fail with "database is
locked" once the (shortened) busy timeout runs out. The machine's database
itself is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None  # cleared: black-holed
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def _gate(self) -> asyncio.Event:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        return self._flowing

    async def _pipe(self, reader, writer) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await self._gate().wait()  # black-holed: hold the bytes, close nothing
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        self._writers.add(client_writer)
        await self._gate().wait()
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
        )
        self._writers -= {client_writer, server_writer}

    async def _listen(self) -> None:
        if self._server is not None and self._server.is_serving():
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    def restore(self) -> None:
        self._run(self._listen())
        self._loop.call_soon_threadsafe(self._gate().set)

    def black_hole(self) -> None:
        """Stop forwarding without closing anything: connections stay open,
        new ones are accepted, and no byte gets through either way."""
        self._run(self._stall())

    async def _stall(self) -> None:
        self._gate().clear()

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class SqliteLock:
    """Holds BEGIN EXCLUSIVE on the database file from another connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def cut(self) -> None:
        self._connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self._connection.execute("BEGIN EXCLUSIVE")

    def restore(self) -> None:
        if self._connection is not None:
            self._connection.execute("ROLLBACK")
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self.restore()
