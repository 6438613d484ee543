"""Open live pages (issue 12): the server CPU that N open tabs add.

    DATABASE_URL=postgres://…/aispendtrack_10m python -m bench.live_tabs --org "Bench Co"

The overview and the Requests page poll /dashboard/live.json every 5 s while
visible (static/js/live.js) and fetch the page again only when its marker
moved. Against a seeded database (used read-only but for the benchmark
user's membership and sessions, as bench.dashboard does), the production
server (uvicorn, 2 workers, config.httpguard's protocol, DEBUG off, as
bench.proxy runs it) and N simulated tabs (aiohttp, one logged-in session a
tab, half on each page, each ticking every 5 s at its own phase with live.js's
request). Windows alternate, WINDOW seconds each, ROUNDS times:
- idle: no tab open, the same-run baseline;
- quiet: tabs poll, the marker never moves (no call lands meanwhile);
- busy: as if a call landed every interval, each tick also re-fetches the
  page (what tabs of an organization with steady traffic cost).
CPU is read from /proc: the uvicorn processes exactly; PostgreSQL as the
whole cluster (the postmaster with its reaped children, and its live
children), since each request's backend lives for milliseconds — other work
on the cluster is noise, hence the idle windows between — and, exactly, the
long-lived backends on the benchmark's own database (the lean path's
connection, proxy/live.py). Reported: medians, as % of one core and of the
machine. Two servers in turn: polls answered by Django's full stack
(AISPENDTRACK_LIVE_LEAN=0, as before) and by the lean path (the default).

The benchmark writes a user, a membership and sessions: run it on a copy,
not on a shared read-only benchmark database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.proxy import (
    PYTHON,
    ROOT,
    _environment,
    _free_port,
    _stop,
    _uvicorn,
    _wait_port,
)
from bench.proxy_report import machine_line, section_write

INTERVAL = 5.0  # live.js
PROBE_BACKENDS = 200
# AISPENDTRACK_LIVE_LEAN: polls through Django's whole stack (a fresh
# PostgreSQL connection each) or the lean path (proxy/live.py, one kept
# connection a worker). Both share the marker for a second (the default).
VARIANTS = {"django": "0", "lean": "1"}
# AISPENDTRACK_LIVE_MARKER_SECONDS of the probes: a poll's queries with the
# marker read, and without it.
PROBES = {"unshared": "0", "shared": "1"}
MARKER_SECONDS = 1.0
PAGES = ("/dashboard/", "/requests/")
TICK = os.sysconf("SC_CLK_TCK")
BEGIN, END = "<!-- live-tabs:begin -->", "<!-- live-tabs:end -->"

SETUP_SESSIONS = """
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import Membership, Organization, Role
from analytics.models import DailyCoarseRollup
from django.db.models import Sum
org = Organization.objects.get(name={org!r})
user, _ = get_user_model().objects.get_or_create(
    username="bench@aispendtrack.local", defaults={{"email": "bench@aispendtrack.local"}}
)
Membership.objects.get_or_create(user=user, organization=org, defaults={{"role": Role.OWNER}})
for _ in range({tabs}):
    session = SessionStore()
    session.update({{
        SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
        HASH_SESSION_KEY: user.get_session_auth_hash(), "organization_id": org.pk,
    }})
    session.create()
    print("SESSION", session.session_key)
calls = DailyCoarseRollup.objects.filter(organization=org).aggregate(n=Sum("calls"))["n"]
print("EVENTS", calls or 0)
"""

# One poll's queries, captured through Django's stack in a process with the
# server's settings, then replayed on N fresh connections as the server makes
# them (CONN_MAX_AGE 0: a backend a request): each backend's CPU is read from
# /proc/<pid>/schedstat (nanoseconds) just before it is closed.
PROBE_POLL = """
import json
from pathlib import Path
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client()
client.cookies["sessionid"] = {session!r}
client.get("/dashboard/live.json", HTTP_ACCEPT="application/json")  # another tab's, just before
with CaptureQueriesContext(connection) as captured:
    answer = client.get("/dashboard/live.json", HTTP_ACCEPT="application/json")
assert answer.status_code == 200, answer.status_code
sqls = [query["sql"] for query in captured.captured_queries]
def cpu_ns(pid):
    return int(Path(f"/proc/{{pid}}/schedstat").read_text().split()[0])
backends = 0
for _ in range({n}):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        for sql in sqls:
            cursor.execute(sql)
            cursor.fetchall()
    backends += cpu_ns(pid)
    connection.close()
# The same on one warm backend (what a connection pool would give).
connection.ensure_connection()
pid = connection.connection.info.backend_pid
with connection.cursor() as cursor:
    warm = cpu_ns(pid)
    for _ in range({n}):
        for sql in sqls:
            cursor.execute(sql)
            cursor.fetchall()
    warm = cpu_ns(pid) - warm
connection.close()
print("QUERIES", json.dumps(sqls))
print("BACKEND_NS", backends // {n})
print("WARM_NS", warm // {n})
"""

DROP_SESSIONS = """
from django.contrib.sessions.models import Session
Session.objects.filter(session_key__in={keys!r}).delete()
"""


def _shell(env: dict[str, str], code: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()


# --- CPU from /proc --------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _own_cpu(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@dataclass
class CpuSnapshot:
    server: float  # uvicorn's master and workers
    postmaster: float  # itself and its reaped children
    backends: dict[int, float] = field(default_factory=dict)  # its live children
    ours: set[int] = field(default_factory=set)  # those on the benchmark's database


def _snapshot(server_pid: int, postmaster_pid: int, database: str) -> CpuSnapshot:
    server = _own_cpu(server_pid) + sum(_own_cpu(c) for c in _children(server_pid))
    fields = _stat(postmaster_pid)
    postmaster = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK
    backends, ours = {}, set()
    for child in _children(postmaster_pid):
        try:
            backends[child] = _own_cpu(child)
            # "postgres: user database host(port) state"
            if f" {database} " in Path(f"/proc/{child}/cmdline").read_text():
                ours.add(child)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return CpuSnapshot(server, postmaster, backends, ours)


def _cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, float]:
    """(uvicorn, PostgreSQL) CPU seconds between two snapshots. A backend that
    ended meanwhile is in the postmaster's reaped-children time whole: its
    time before the window is taken off."""
    ended = sum(cpu for pid, cpu in before.backends.items() if pid not in after.backends)
    live = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    return after.server - before.server, after.postmaster - before.postmaster + live - ended


def _kept_backends_cpu(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds of the benchmark database's backends alive through the
    window (exact; the lean path's kept connections, the workers' threads')."""
    kept = before.ours & after.ours
    return sum(after.backends[pid] - before.backends[pid] for pid in kept)


def _postmaster_pid(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None  # noqa: S101
        # while the backend lives: once the connection closes it exits
        return int(_stat(row[0])[1])  # the backend's parent


# --- the tabs --------------------------------------------------------------------------


@dataclass
class Tally:
    polls: int = 0
    pages: int = 0
    failures: int = 0
    poll_ms: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)


async def _tab(http, base: str, session_key: str, page: str, busy: bool, until: float, tally):
    """live.js's tick every INTERVAL from a random phase; the page again when the
    marker moved (busy: every tick, as if a call landed each interval)."""
    headers = {"Cookie": f"sessionid={session_key}"}
    latest = None
    await asyncio.sleep(random.uniform(0, INTERVAL))  # noqa: S311 - tabs opened at random times
    while time.monotonic() < until:
        began = time.perf_counter()
        async with http.get(
            base + "/dashboard/live.json", headers={**headers, "Accept": "application/json"}
        ) as answer:
            data = await answer.json() if answer.status == 200 else None
        tally.poll_ms.append((time.perf_counter() - began) * 1000)
        tally.polls += 1
        if data is None:
            tally.failures += 1
        elif busy or (latest is not None and data["latest"] != latest):
            began = time.perf_counter()
            async with http.get(base + page, headers=headers) as answer:
                await answer.read()
                tally.failures += answer.status != 200
            tally.page_ms.append((time.perf_counter() - began) * 1000)
            tally.pages += 1
        if data is not None:
            latest = data["latest"]
        # setInterval: the next tick is INTERVAL after this one began, or at once when late
        rest = INTERVAL - (time.perf_counter() - began)
        await asyncio.sleep(max(0.0, min(rest, until - time.monotonic())))


async def _tabs(base: str, sessions: list[str], seconds: float, mode, tab=None) -> Tally:
    """The sessions' tabs for `seconds`, half on each page; `tab(http, base,
    session, page, mode, until, tally)` is one (this module's `_tab` unless given)."""
    import aiohttp

    tab = tab or _tab
    tally = Tally()
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(
            *(
                tab(http, base, key, PAGES[n % len(PAGES)], mode, until, tally)
                for n, key in enumerate(sessions)
            )
        )
    return tally


# --- the run ---------------------------------------------------------------------------


@dataclass
class Window:
    variant: str  # a VARIANTS key
    kind: str  # idle, quiet, busy
    seconds: float
    server_s: float
    postgres_s: float
    kept_s: float
    tally: Tally | None = None


def _probe(env: dict[str, str], session: str) -> dict:
    """A poll's queries and what they cost PostgreSQL (PROBE_POLL)."""
    out = _shell(env, PROBE_POLL.format(session=session, n=PROBE_BACKENDS))

    def ms(name: str) -> float:
        return int(re.search(rf"{name} (\d+)", out).group(1)) / 1e6  # type: ignore[union-attr]

    queries = json.loads(re.search(r"QUERIES (.*)", out).group(1))  # type: ignore[union-attr]
    return {"queries": queries, "backend_ms": ms("BACKEND_NS"), "warm_ms": ms("WARM_NS")}


def measure(*, org: str, tabs: int, window: float, rounds: int) -> dict:
    env = _environment(_free_port())
    # As `make serve` does: pages need the static files' manifest with DEBUG off.
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        env=env,
        cwd=ROOT,
        check=True,
    )
    out = _shell(env, SETUP_SESSIONS.format(org=org, tabs=tabs))
    sessions = re.findall(r"SESSION (\S+)", out)
    events = int(re.search(r"EVENTS (\d+)", out).group(1))  # type: ignore[union-attr]
    postmaster = _postmaster_pid(env["DATABASE_URL"])
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    log = open(ROOT / "var" / "bench" / "live_tabs.log", "wb")  # noqa: SIM115 - closed below
    windows: list[Window] = []
    probes = {}
    try:
        for probe, seconds in PROBES.items():
            penv = {**env, "AISPENDTRACK_LIVE_MARKER_SECONDS": seconds}
            probes[probe] = _probe(penv, sessions[0])
        for variant, lean in VARIANTS.items():
            kinds = ("quiet", "busy") if variant == "lean" else ("quiet",)

            def open_tabs(base: str, kind: str, seconds: float) -> Tally:
                return asyncio.run(_tabs(base, sessions, seconds, kind != "quiet"))

            windows += serve_windows(
                {**env, "AISPENDTRACK_LIVE_LEAN": lean},
                variant=variant,
                kinds=kinds,
                tabs=open_tabs,
                window=window,
                rounds=rounds,
                watch=(postmaster, database),
                log=log,
            )
    finally:
        log.close()
        _shell(env, DROP_SESSIONS.format(keys=sessions))
    return {"windows": windows, "events": events, "tabs": tabs, "org": org, "probes": probes}


def serve_windows(
    env: dict[str, str],
    *,
    variant: str,
    kinds: tuple[str, ...],
    tabs,
    window: float,
    rounds: int,
    watch: tuple[int, str],
    log,
) -> list[Window]:
    """A server with `env`; every tab opened once (`tabs(base, "warm", seconds)`:
    the workers' first requests warm them up), then `rounds` rounds of an idle
    window and one per kind (`tabs(base, kind, seconds)`), CPU read around each.
    `watch`: the postmaster's pid and the benchmark's database."""
    postmaster, database = watch
    port = _free_port()
    command = _uvicorn(
        "config.asgi:application", port, http="config.httpguard:GuardedHttpToolsProtocol"
    )
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    windows: list[Window] = []
    try:
        _wait_port(port)
        time.sleep(2)
        tabs(base, "warm", INTERVAL * 2)
        for _ in range(rounds):
            for kind in ("idle", *kinds):
                before = _snapshot(server.pid, postmaster, database)
                began = time.perf_counter()
                tally = None
                if kind == "idle":
                    time.sleep(window)
                else:
                    tally = tabs(base, kind, window)
                after = _snapshot(server.pid, postmaster, database)
                took = time.perf_counter() - began
                cpu = _cpu_between(before, after)
                kept = _kept_backends_cpu(before, after)
                windows.append(Window(variant, kind, took, *cpu, kept, tally=tally))
                print(_window_line(windows[-1]), flush=True)
    finally:
        _stop(server)
    return windows


def _window_line(w: Window) -> str:
    line = (
        f"  {w.variant:<8} {w.kind:<5} {w.seconds:5.1f} s: "
        f"uvicorn {w.server_s / w.seconds:6.1%} of a core, "
        f"PostgreSQL {w.postgres_s / w.seconds:6.1%} (kept backends {w.kept_s / w.seconds:.1%})"
    )
    if w.tally:
        t = w.tally
        line += f"; {t.polls} polls (p50 {statistics.median(t.poll_ms or [0]):.1f} ms)"
        line += f", {t.pages} pages (p50 {statistics.median(t.page_ms or [0]):.0f} ms)"
        line += f", {t.failures} failures"
    return line


def summarise(data: dict) -> dict:
    """Per variant and window kind: CPU added over the variant's idle windows
    (medians), per poll and at `tabs` tabs. A poll's PostgreSQL time through
    Django is the probe's on fresh backends (exact but for fork and exit): the
    marker is read about once a second, so a poll costs the probe's shared
    poll plus that share of the marker's queries. Through the lean path it is
    the window difference of the backends kept through the window (exact:
    its connections live as long as the workers); the probe's warm figure
    is the cross-check there. The cluster's difference (other work on it is
    noise) is a cross-check for both."""
    cores = os.cpu_count() or 1
    figures: dict[str, dict] = {}
    for variant in VARIANTS:
        windows = [w for w in data["windows"] if w.variant == variant]
        probe, miss = data["probes"]["shared"], data["probes"]["unshared"]
        cost = "warm_ms" if variant == "lean" else "backend_ms"
        idle = [w for w in windows if w.kind == "idle"]
        idle_server = statistics.median(w.server_s / w.seconds for w in idle)
        idle_postgres = statistics.median(w.postgres_s / w.seconds for w in idle)
        idle_kept = statistics.median(w.kept_s / w.seconds for w in idle)
        figures[variant] = {"idle_postgres": [w.postgres_s / w.seconds for w in idle]}
        for kind in ("quiet", "busy"):
            mine = [w for w in windows if w.kind == kind and w.tally and w.tally.polls]
            if not mine:
                continue
            tallies = [w.tally for w in mine if w.tally]

            def per_poll(part: str, idle_rate: float, mine=mine) -> float:
                """Median over windows of the CPU ms a poll added."""
                return statistics.median(
                    (getattr(w, part) - idle_rate * w.seconds) / w.tally.polls * 1000
                    for w in mine
                    if w.tally
                )

            polls_per_s = statistics.median(w.tally.polls / w.seconds for w in mine if w.tally)
            reads = min(1.0, 1 / (MARKER_SECONDS * polls_per_s))
            probe_ms = probe[cost] + (miss[cost] - probe[cost]) * reads
            server_ms = per_poll("server_s", idle_server)
            cluster_ms = per_poll("postgres_s", idle_postgres)
            kept_ms = per_poll("kept_s", idle_kept)
            postgres_ms = kept_ms if variant == "lean" else probe_ms
            core = (server_ms + postgres_ms) * data["tabs"] / INTERVAL / 1000
            figures[variant][kind] = {
                "polls": sum(t.polls for t in tallies),
                "polls_per_s": polls_per_s,
                "pages": sum(t.pages for t in tallies),
                "failures": sum(t.failures for t in tallies),
                "poll_p50": statistics.median(ms for t in tallies for ms in t.poll_ms),
                "page_p50": statistics.median([ms for t in tallies for ms in t.page_ms] or [0.0]),
                "server_ms": server_ms,
                "postgres_ms": postgres_ms,
                "total_ms": server_ms + postgres_ms,
                "core": core,
                "machine": core / cores,
                "cluster_ms": cluster_ms,
                "kept_ms": kept_ms,
                "probe_ms": probe_ms,
                "cluster_core": (server_ms + cluster_ms) * polls_per_s / 1000,
            }
    return figures


def write_results(data: dict, s: dict, *, window: float, rounds: int, load: tuple) -> None:
    probes = data["probes"]
    spread = ", ".join(f"{v:.0%}" for f in s.values() for v in f["idle_postgres"])
    queries = "\n".join(
        f"{n}. `{sql[:150]}`" for n, sql in enumerate(probes["unshared"]["queries"], 1)
    )

    def row(name: str, f: dict) -> str:
        return (
            f"| {name} | {f['polls']:,} ({f['polls_per_s']:.1f}/s) | {f['server_ms']:.2f} + "
            f"{f['postgres_ms']:.2f} = **{f['total_ms']:.2f} ms** | **{f['core']:.1%}** | "
            f"**{f['machine']:.1%}** | {f['probe_ms']:.2f} ms | {f['cluster_core']:.1%} | "
            f"{f['poll_p50']:.1f} ms | {f['failures']} |"
        )

    busy = s["lean"]["busy"]
    section = f"""{BEGIN}
## Open live pages (`python -m bench.live_tabs`, issue 12)

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, organization "{data["org"]}" with {data["events"]:,}
events (a copy: the benchmark writes its user, membership and sessions). Machine:
{machine_line()}; shared with other work (load average {load[0]:.1f} before, {load[1]:.1f}
after). Server: uvicorn 2 workers (config.httpguard's protocol, uvloop), DEBUG off, PostgreSQL
+ Redis. {data["tabs"]} tabs (aiohttp, a logged-in session each, half on the overview, half on
Requests), each polling `/dashboard/live.json` every 5 s from its own phase as
static/js/live.js does. Two servers in turn: every poll through Django's whole stack
(`AISPENDTRACK_LIVE_LEAN=0`, as before) and through the lean path (proxy/live.py, the
default); both share the organization's marker for 1 s. Windows of {window:.0f} s, {rounds}
rounds of idle / quiet (/ busy) each. uvicorn's CPU from /proc (master and workers): the
window's less the idle windows' rate, a poll. PostgreSQL's a poll, through Django: a probe, a
poll's queries captured through Django and replayed on {PROBE_BACKENDS} fresh connections as
Django opens them (CONN_MAX_AGE 0), each backend's CPU read from /proc/<pid>/schedstat (fork
and exit not counted), plus the marker's queries once a second; through the lean path: the
window difference of the backends on the benchmark's database that lived through the window,
less the idle windows' (exact: the lean path keeps its connection), with the same probe on one
warm connection beside it. Cross-check: the whole cluster's window difference (other people's
tests run on it: idle windows read {spread} of a core).

| {data["tabs"]} tabs, quiet (no call lands) | polls | CPU a poll: uvicorn + PostgreSQL \
| % of one core | % of the machine | PostgreSQL by probe | cross-check (cluster) | poll p50 \
| failures |
|---|---|---|---|---|---|---|---|---|
{row("Django's stack (before)", s["django"]["quiet"])}
{row("lean path (default)", s["lean"]["quiet"])}

Target: < 5 % CPU. A poll's PostgreSQL time on a fresh backend: {
        probes["unshared"]["backend_ms"]:.2f} ms with the marker, {
        probes["shared"]["backend_ms"]:.2f} ms without it (the session's 3 queries and the
connection); on one warm backend {probes["unshared"]["warm_ms"]:.2f} and {
        probes["shared"]["warm_ms"]:.2f} ms. Busy, lean (as if a call landed every 5 s: each tick
also re-fetches the page, through Django; {busy["pages"]:,} pages, p50 {busy["page_p50"]:.0f}
ms, {busy["failures"]} failures): uvicorn {busy["server_ms"]:.1f} ms a tick + PostgreSQL
(cluster difference) {busy["cluster_ms"]:.1f} ms: {busy["cluster_core"]:.0%} of a core.

A poll's queries, marker read ({len(probes["unshared"]["queries"])}; shared, the last 3 once
a second):

{queries}
{END}"""
    section_write(section, begin=BEGIN, end=END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_tabs", description=__doc__)
    parser.add_argument("--org", default="Bench Co")
    parser.add_argument("--tabs", type=int, default=50)
    parser.add_argument("--window", type=float, default=60.0, help="seconds a window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    data = measure(org=args.org, tabs=args.tabs, window=args.window, rounds=args.rounds)
    s = summarise(data)
    for variant, f in s.items():
        for kind in ("quiet", "busy"):
            if kind in f:
                k = f[kind]
                print(
                    f"{variant} {kind}: {k['server_ms']:.2f} + {k['postgres_ms']:.2f} ms CPU a "
                    f"poll: {k['core']:.1%} of a core, {k['machine']:.1%} of the machine at "
                    f"{args.tabs} tabs; cluster cross-check {k['cluster_core']:.1%}; "
                    f"{k['pages']} pages, {k['failures']} failures"
                )
    if not args.no_record:
        write_results(
            data, s, window=args.window, rounds=args.rounds, load=(load, os.getloadavg()[0])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
