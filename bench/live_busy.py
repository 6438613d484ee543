"""Open live pages of a busy organization (issue 12): the server CPU that N
open tabs add while a call lands every second.

    DATABASE_URL=postgres://…/aispendtrack_busy_1m python -m bench.live_busy

With calls landing, every poll of every tab sees the marker move, so every
tick of every visible tab also refreshes its #live block (static/js/live.js).
Set up as bench.live_tabs (its sessions, server, tabs' phases and /proc CPU
reading): the lean poll path, 50 tabs of one owner, half on the overview,
half on Requests. A writer process lands one call a second through the ledger
path (`usage_record_batch`) for the whole run, idle windows included, so its
own work cancels out. Three ways to refresh, windows alternating:
- page: the whole page through Django, as live.js did before;
- fragment: the #live block alone, each tab rendering its own
  (AISPENDTRACK_LIVE_FRAGMENT_SECONDS=0);
- shared: the #live block rendered once per organization, role and URL for
  5 s and shared; a refresh that finds it fresh is answered on the lean
  path, as a poll is (proxy/live.py);
- carried: shared, and the poll that sees the marker move carries the
  block when its share is fresh (live.js's `page` and `since`), so the tab
  fetches only when it is not (the default).
CPU added over the same server's idle windows (medians): uvicorn exactly,
PostgreSQL as the whole cluster's difference (a page's queries run on fresh
backends, CONN_MAX_AGE 0; other work on the cluster is noise).

Writes sessions and calls: run it on a copy, not on a shared read-only database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.live_tabs import (
    DROP_SESSIONS,
    INTERVAL,
    SETUP_SESSIONS,
    Tally,
    Window,
    _postmaster_pid,
    _shell,
    _tabs,
    serve_windows,
)
from bench.proxy import PYTHON, ROOT, _environment, _free_port
from bench.proxy_report import machine_line, section_write

BEGIN, END = "<!-- live-busy:begin -->", "<!-- live-busy:end -->"
# Server settings, and the windows run against each: the whole page and the
# unshared fragment on a server that shares nothing, the shared fragment on
# the default one.
SERVERS = {"0": ("page", "fragment"), "5": ("shared", "carried")}
LIVE_MARKER = re.compile(rb'id="live"[^>]*data-live-latest="([^"]*)"')

WRITER = """
import itertools, time
from datetime import UTC, datetime
from decimal import Decimal
from accounts.models import Organization
from analytics.models import Status
from analytics.records import UsageRecord
from analytics.services import usage_record_batch
from pricing.usage import Usage
org = Organization.objects.get(name={org!r})
print("WRITING", flush=True)
for n in itertools.count():
    usage_record_batch([UsageRecord(
        request_id=f"req_busy{{time.time_ns()}}", organization_id=org.pk, api_key_id=None,
        created_at=datetime.now(UTC), provider="openai", endpoint="/v1/chat/completions",
        status=Status.SUCCESS, model="gpt-4o", response_model="gpt-4o", customer_id="busy",
        feature="", trace_id="", environment="production",
        usage=Usage(input_tokens=100, output_tokens=10), cost=Decimal("0.001"),
        http_status=200, latency_ms=250, streamed=False,
    )])
    time.sleep(1.0)
"""


async def _tab(http, base: str, session_key: str, page: str, refresh: str, until: float, tally):
    """live.js's tick every INTERVAL from a random phase; the block again when
    the marker moved (from the poll's answer when it carries it), keeping the
    marker the block was rendered at. A carried block counts as a refresh
    with no time of its own (the poll's is in poll_ms)."""
    headers = {"Cookie": f"sessionid={session_key}"}
    if refresh != "page":
        headers["X-AiSpendTrack-Live"] = "fragment"
    latest = None
    await asyncio.sleep(random.uniform(0, INTERVAL))  # noqa: S311 - tabs opened at random times
    while time.monotonic() < until:
        began = time.perf_counter()
        query = {"page": page, "since": latest or ""} if refresh == "carried" else None
        async with http.get(
            base + "/dashboard/live.json",
            params=query,
            headers={**headers, "Accept": "application/json"},
        ) as answer:
            data = await answer.json() if answer.status == 200 else None
        tally.polls += 1
        tally.poll_ms.append((time.perf_counter() - began) * 1000)
        if data is None:
            tally.failures += 1
        elif latest is None:
            latest = data["latest"]  # the page was just loaded
        elif data["latest"] != latest and "fragment" in data:
            tally.pages += 1
            found = LIVE_MARKER.search(data["fragment"].encode())
            latest = found.group(1).decode() if found else data["latest"]
        elif data["latest"] != latest:
            fetched = time.perf_counter()
            async with http.get(base + page, headers=headers) as answer:
                body = await answer.read()
                tally.failures += answer.status != 200
            tally.page_ms.append((time.perf_counter() - fetched) * 1000)
            tally.pages += 1
            found = LIVE_MARKER.search(body)
            latest = found.group(1).decode() if found else data["latest"]
        rest = INTERVAL - (time.perf_counter() - began)
        await asyncio.sleep(max(0.0, min(rest, until - time.monotonic())))


def measure(*, org: str, tabs: int, window: float, rounds: int) -> dict:
    env = _environment(_free_port())
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
    log = open(ROOT / "var" / "bench" / "live_busy.log", "wb")  # noqa: SIM115 - closed below
    writer = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "-c", WRITER.format(org=org)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    windows: list[Window] = []
    try:
        assert writer.stdout is not None  # noqa: S101
        for line in writer.stdout:  # after the shell's own banner
            if line.strip() == b"WRITING":
                break
        else:
            raise RuntimeError("the writer did not start: see var/bench/live_busy.log")
        for share, kinds in SERVERS.items():

            def open_tabs(base: str, kind: str, seconds: float, kinds=kinds) -> Tally:
                refresh = kinds[0] if kind == "warm" else kind
                return asyncio.run(_tabs(base, sessions, seconds, refresh, tab=_tab))

            windows += serve_windows(
                {**env, "AISPENDTRACK_LIVE_FRAGMENT_SECONDS": share},
                variant=share,
                kinds=kinds,
                tabs=open_tabs,
                window=window,
                rounds=rounds,
                watch=(postmaster, database),
                log=log,
            )
    finally:
        writer.terminate()
        writer.wait(10)
        log.close()
        _shell(env, DROP_SESSIONS.format(keys=sessions))
    return {"windows": windows, "events": events, "tabs": tabs, "org": org}


def summarise(data: dict) -> dict:
    """Per refresh kind: CPU added over its server's idle windows (medians)."""
    figures = {}
    for share, kinds in SERVERS.items():
        mine = [w for w in data["windows"] if w.variant == share]
        idle = [w for w in mine if w.kind == "idle"]
        idle_server = statistics.median(w.server_s / w.seconds for w in idle)
        idle_postgres = statistics.median(w.postgres_s / w.seconds for w in idle)
        for kind in kinds:
            ws = [w for w in mine if w.kind == kind and w.tally]
            tallies = [w.tally for w in ws if w.tally]
            server = statistics.median(w.server_s / w.seconds - idle_server for w in ws)
            postgres = statistics.median(w.postgres_s / w.seconds - idle_postgres for w in ws)
            figures[kind] = {
                "server": server,
                "postgres": postgres,
                "core": server + postgres,
                "machine": (server + postgres) / (os.cpu_count() or 1),
                "polls": sum(t.polls for t in tallies),
                "refreshes": sum(t.pages for t in tallies),
                "failures": sum(t.failures for t in tallies),
                "refresh_p50": statistics.median([ms for t in tallies for ms in t.page_ms] or [0]),
            }
    return figures


def write_results(data: dict, s: dict, *, window: float, rounds: int, load: tuple) -> None:
    def row(name: str, f: dict) -> str:
        return (
            f"| {name} | {f['refreshes']:,} of {f['polls']:,} | {f['refresh_p50']:.0f} ms | "
            f"{f['server']:.1%} + {f['postgres']:.1%} | **{f['core']:.1%}** | "
            f"**{f['machine']:.1%}** | {f['failures']} |"
        )

    section = f"""{BEGIN}
## Open live pages of a busy organization (`python -m bench.live_busy`, issue 12)

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, organization "{data["org"]}" with {data["events"]:,}
events (a copy), a call landing every second through the ledger path for the whole run.
Machine: {machine_line()}; shared with other work (load average {load[0]:.1f} before,
{load[1]:.1f} after). Server as bench.live_tabs (uvicorn 2 workers, DEBUG off, the lean
poll path); {data["tabs"]} tabs of one owner, half on the overview, half on Requests, each
ticking every 5 s from its own phase as static/js/live.js does and refreshing when the
marker moved; a shared block still fresh is answered on the lean path as polls are, or
carried in the poll's answer (the default: a refresh with no request of its own). Windows of \
{window:.0f} s, {rounds} rounds; CPU added over the same server's
idle windows, medians: uvicorn exactly, PostgreSQL as the whole cluster's difference (noisy:
other helpers' tests run on it).

| {data["tabs"]} tabs, a call a second | refreshes of polls | refresh p50 | uvicorn + \
PostgreSQL | % of one core | % of the machine | failures |
|---|---|---|---|---|---|---|
{row("whole page, each tab its own (before)", s["page"])}
{row("#live block, each tab its own", s["fragment"])}
{row("#live block shared 5 s, fetched", s["shared"])}
{row("#live block shared 5 s, carried in the poll (default)", s["carried"])}
{END}"""
    section_write(section, begin=BEGIN, end=END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_busy", description=__doc__)
    parser.add_argument("--org", default="Bench Co")
    parser.add_argument("--tabs", type=int, default=50)
    parser.add_argument("--window", type=float, default=30.0, help="seconds a window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    data = measure(org=args.org, tabs=args.tabs, window=args.window, rounds=args.rounds)
    s = summarise(data)
    for kind, f in s.items():
        print(
            f"{kind}: {f['core']:.1%} of a core ({f['machine']:.1%} of the machine), "
            f"{f['refreshes']} refreshes of {f['polls']} polls, p50 {f['refresh_p50']:.0f} ms"
        )
    if not args.no_record:
        write_results(
            data, s, window=args.window, rounds=args.rounds, load=(load, os.getloadavg()[0])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
