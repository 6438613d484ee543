"""The soak (issue 11): the served stack at c=32 for 10 minutes, a streaming mix.

`python -m bench soak` (or `make bench`); BENCH_SOAK_SECONDS sets the length
(default 600). The production stack as `make serve` runs it: uvicorn, 2
workers, config.httpguard's protocol, DEBUG off, PostgreSQL + Redis (as
bench.proxy picks them; the database is a fresh `<name>_soak` each run),
`manage.py ledger_writer` and `manage.py rollups_fold --loop` beside the
web workers, in front of bench.fake_upstream.
One wrk run (bench/mix.lua: a cycle of ten chat calls, three streamed, OpenAI
and Anthropic shapes) for the whole time; beside it, every second a fold lag
marker (bench.foldlag), every SAMPLE_SECONDS each web worker's RSS and
/healthz's queue. After the load the stack is left to drain (queue empty,
no delta pending), then stopped as make does, and the ledger is counted.

Checks: events in the ledger = calls wrk saw answered, give or take the
calls in flight when wrk stopped (at most one a connection: recorded as
`cancelled`, or as answered when the proxy finished first); web-worker RSS
within ±10 % of its value after WARMUP_SECONDS; fold lag ≤ 10 s throughout;
no errors. Figures go to stdout and bench/RESULTS.md (the soak section).

Call → dashboard is measured end to end, not bounded: every PROBE_SECONDS a
probe call through the proxy with its own `x-customer-id`, and from its
answer the time until that customer has a CustomerRollup row (what the
customers pages read; the last table the fold writes), polled every
PROBE_POLL_SECONDS. Probe calls are counted apart from wrk's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import Result
from bench.foldlag import FoldLagWatch
from bench.proxy import (
    PYTHON,
    ROOT,
    _clear_ledger,
    _environment,
    _errors,
    _free_port,
    _setup,
    _stop,
    _uvicorn,
    _wait_port,
    _worker_rss_mb,
    _wrk,
)
from bench.proxy_report import machine_line, section_write

SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "600"))
CONNECTIONS = 32
SAMPLE_SECONDS = 10
WARMUP_SECONDS = min(60, SECONDS // 5)
RSS_DRIFT = 0.10  # ± of the value after warm-up
FOLD_LAG_S = 10.0
PROBE_SECONDS = 5
PROBE_POLL_SECONDS = 0.1
PROBE_PREFIX = "soak-probe-"
DRAIN_SECONDS = 120  # after the load, for the queue and the fold to empty
GRACEFUL_TIMEOUT = 7  # as the Makefile's
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


@dataclass
class Watch:
    """What the sampler thread gathers while wrk runs; times are seconds since
    the load began."""

    lag: FoldLagWatch
    began: float = field(default_factory=time.perf_counter)
    rss: list[tuple[float, list[float]]] = field(default_factory=list)  # each web worker's MB
    queue: list[tuple[float, dict]] = field(default_factory=list)  # /healthz's queue
    errors: list[str] = field(default_factory=list)
    fresh: list[tuple[float, float]] = field(default_factory=list)  # (answered at, s to dashboard)
    probes_sent: int = 0
    probes_unseen: int = 0


def _pending(database_url: str, org_id: int):
    import psycopg

    conn = psycopg.connect(database_url, autocommit=True)

    def pending() -> tuple[int | None, int | None]:
        row = conn.execute(
            "SELECT min(id), max(id) FROM analytics_rollupdelta WHERE organization_id = %s",
            (org_id,),
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    return conn, pending


def _healthz_queue(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:  # noqa: S310
        return json.loads(answer.read())["queue"]


def _sample(watch: Watch, stop: threading.Event, server_pid: int, port: int) -> None:
    """Every second the fold lag and the queue, every SAMPLE_SECONDS the RSS."""
    next_rss = 0.0
    while not stop.is_set():
        watch.lag.sample()
        at = time.perf_counter() - watch.began
        try:
            watch.queue.append((at, _healthz_queue(port)))
        except (OSError, ValueError, KeyError) as error:
            watch.errors.append(f"{at:.0f} s: /healthz {error}")
        if at >= next_rss:
            watch.rss.append((at, _worker_rss_mb(server_pid)))
            next_rss += SAMPLE_SECONDS
        stop.wait(1)


def _probe_call(port: int, key: str, customer: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"probe"}]}',
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer sk-bench-provider-key",
            "x-aispendtrack-key": key,
            "x-customer-id": customer,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()


def _probe(
    watch: Watch,
    load_over: threading.Event,
    done: threading.Event,
    port: int,
    key: str,
    database_url: str,
    org_id: int,
) -> None:
    """A probe call every PROBE_SECONDS while the load runs; each one's time from
    its answer to its customer's first CustomerRollup row, until `done`."""
    import psycopg

    waiting: dict[str, float] = {}  # customer -> perf_counter at the answer
    next_call = 0.0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not done.is_set():
            now = time.perf_counter()
            if not load_over.is_set() and now >= next_call:
                next_call = now + PROBE_SECONDS
                watch.probes_sent += 1
                customer = f"{PROBE_PREFIX}{watch.probes_sent}"
                try:
                    _probe_call(port, key, customer)
                    waiting[customer] = time.perf_counter()
                except OSError as error:
                    watch.errors.append(f"{now - watch.began:.0f} s: probe {error}")
            if waiting:
                seen = conn.execute(
                    "SELECT DISTINCT customer_id FROM analytics_customerrollup "
                    "WHERE organization_id = %s AND dimension = '' AND customer_id = ANY(%s)",
                    (org_id, list(waiting)),
                ).fetchall()
                at = time.perf_counter()
                for (customer,) in seen:
                    answered = waiting.pop(customer)
                    watch.fresh.append((answered - watch.began, at - answered))
            done.wait(PROBE_POLL_SECONDS)
    watch.probes_unseen = len(waiting)


def _drain(watch: Watch, port: int) -> float | None:
    """Seconds until the hand-off queue is written and every delta folded
    (None: not within DRAIN_SECONDS)."""
    began = time.perf_counter()
    while time.perf_counter() - began < DRAIN_SECONDS:
        settled = watch.lag.sample()
        if settled and _healthz_queue(port).get("records") == 0 and watch.lag.sample():
            return time.perf_counter() - began
        time.sleep(0.2)
    watch.lag.give_up()
    return None


def _ledger(database_url: str, org_id: int) -> dict[str, int]:
    """Events by status, and how many were streamed."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*), count(*) FILTER (WHERE streamed) "
            "FROM analytics_usageevent WHERE organization_id = %s "
            "AND customer_id NOT LIKE %s GROUP BY status",
            (org_id, PROBE_PREFIX + "%"),
        ).fetchall()
        (probes,) = conn.execute(
            "SELECT count(*) FROM analytics_usageevent "
            "WHERE organization_id = %s AND customer_id LIKE %s",
            (org_id, PROBE_PREFIX + "%"),
        ).fetchone() or (0,)
    counts = {status: n for status, n, _ in rows}
    counts["streamed"] = sum(streamed for _, _, streamed in rows)
    counts["probes"] = probes
    return counts


def _log_errors(path: Path) -> int:
    return sum(
        1
        for line in path.read_text(errors="replace").splitlines()
        if "Traceback" in line or " ERROR " in line or line.startswith("ERROR")
    )


def _fresh_database(url: str) -> str:
    """`url`'s server with an empty database of the soak's own (`…_soak`),
    dropped and made again: a ledger grown by earlier runs, or their dead
    rows and bloated indexes, slowed the writer and the fold run by run."""
    import psycopg

    base, name = url.rsplit("/", 1)
    name = f"{name}_soak"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def measure() -> dict:
    upstream_port, port = _free_port(), _free_port()
    env = _environment(upstream_port)
    env["DATABASE_URL"] = _fresh_database(env["DATABASE_URL"])
    env["AISPENDTRACK_UPSTREAM_ANTHROPIC"] = env["AISPENDTRACK_UPSTREAM_OPENAI"]
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    key, org_id = _setup(env)
    _clear_ledger(env, org_id)
    log_path = ROOT / "var" / "bench" / "soak.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    manage = [PYTHON, "manage.py"]

    def start(command: list[str], **extra) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log, **extra)

    upstream = start([PYTHON, "-m", "bench.fake_upstream", str(upstream_port)])
    server = start(
        [
            *_uvicorn(
                "config.asgi:application", port, http="config.httpguard:GuardedHttpToolsProtocol"
            ),
            f"--timeout-graceful-shutdown={GRACEFUL_TIMEOUT}",
        ]
    )
    writer = start([*manage, "ledger_writer"])
    fold = start([*manage, "rollups_fold", "--loop"])
    conn, pending = _pending(env["DATABASE_URL"], org_id)
    stop = threading.Event()
    probes_done = threading.Event()
    load = (os.getloadavg()[0], 0.0)
    started = datetime.now(UTC)
    try:
        _wait_port(upstream_port)
        _wait_port(port)
        time.sleep(2)  # both workers up
        watch = Watch(FoldLagWatch(pending))
        sampler = threading.Thread(target=_sample, args=(watch, stop, server.pid, port))
        sampler.start()
        probe = threading.Thread(
            target=_probe,
            args=(watch, stop, probes_done, port, key, env["DATABASE_URL"], org_id),
        )
        probe.start()
        run = _wrk(f"http://127.0.0.1:{port}", key, CONNECTIONS, SECONDS, script="mix.lua")
        load = (load[0], os.getloadavg()[0])
        stop.set()
        sampler.join(30)
        drained = _drain(watch, port)
        probes_done.set()
        probe.join(30)
        workers_alive = len(_worker_rss_mb(server.pid))
    finally:
        stop.set()
        probes_done.set()
        try:
            _stop(server)  # graceful: calls in flight finish and are handed off
            _stop(writer)  # then the writer writes what is left
            _stop(fold)
        finally:
            upstream.terminate()
            upstream.wait(10)
            conn.close()
            log.close()
    return {
        "run": run,
        "watch": watch,
        "drained_s": drained,
        "workers_alive": workers_alive,
        "ledger": _ledger(env["DATABASE_URL"], org_id),
        "log_errors": _log_errors(log_path),
        "load": load,
        "started": started,
    }


def summarise(data: dict) -> dict:
    run, watch, ledger = data["run"], data["watch"], data["ledger"]
    recorded = sum(n for status, n in ledger.items() if status not in ("streamed", "probes"))
    warm = [sizes for at, sizes in watch.rss if at >= WARMUP_SECONDS and sizes]
    base = warm[0] if warm else []
    drift = [
        max(abs(sizes[i] - mb) / mb for sizes in warm if len(sizes) > i)
        for i, mb in enumerate(base)
    ]
    lags = [lag for _, lag in watch.lag.lags]
    queue_records = [queue.get("records", 0) for _, queue in watch.queue]
    queue_age = [queue.get("oldest_seconds", 0.0) for _, queue in watch.queue]
    bound = max(queue_age, default=0.0) + max(lags, default=0.0)
    extra = recorded - run["requests"]
    other = {
        s: n for s, n in ledger.items() if s not in ("success", "cancelled", "streamed", "probes")
    }
    fresh = [seconds for _, seconds in watch.fresh]
    probes_ok = (
        bool(fresh)
        and watch.probes_unseen == 0
        and ledger.get("probes", 0) == len(fresh) == watch.probes_sent
    )
    checks = {
        "ledger = answered (± in flight at the end)": 0 <= extra <= CONNECTIONS,
        "worker RSS within ±10 % after warm-up": bool(drift) and max(drift) <= RSS_DRIFT,
        "fold lag ≤ 10 s throughout": bool(lags) and max(lags) <= FOLD_LAG_S,
        "call → dashboards ≤ 10 s (every probe, measured)": probes_ok and max(fresh) <= FOLD_LAG_S,
        "no errors": run["errors"] == 0 and not other and not watch.errors,
        "queue and fold drained after the load": data["drained_s"] is not None,
    }
    return {
        "answered": run["requests"],
        "rps": run["rps"],
        "recorded": recorded,
        "extra": extra,
        "other_statuses": other,
        "streamed_share": ledger.get("streamed", 0) / recorded if recorded else 0.0,
        "rss_base": base,
        "rss_end": warm[-1] if warm else [],
        "rss_drift": drift,
        "lag_max": max(lags, default=0.0),
        "lag_p50": statistics.median(lags) if lags else 0.0,
        "lag_markers": len(lags),
        "queue_records_max": max(queue_records, default=0),
        "queue_age_max": max(queue_age, default=0.0),
        "fresh_bound": bound,
        "fresh_max": max(fresh, default=0.0),
        "fresh_p50": statistics.median(fresh) if fresh else 0.0,
        "fresh_p95": _p95(fresh),
        "probes": (
            f"{len(fresh)} of {watch.probes_sent} seen, {ledger.get('probes', 0)} in the ledger"
        ),
        "checks": checks,
    }


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def _minutes(watch: Watch) -> list[str]:
    """One table row a minute: RSS at its last sample, worst lag and queue in it."""
    rows = []
    for minute in range(int(max((at for at, _ in watch.queue), default=0) // 60) + 1):

        def inside(at: float, minute: int = minute) -> bool:
            return minute * 60 <= at < (minute + 1) * 60

        queues = [queue for at, queue in watch.queue if inside(at)]
        sizes = [sizes for at, sizes in watch.rss if inside(at)]
        if not queues or not sizes:
            continue
        lag = max((lag for when, lag in watch.lag.lags if inside(when - watch.began)), default=0)
        rss = ", ".join(f"{mb:.0f}" for mb in sizes[-1])
        records = max(queue.get("records", 0) for queue in queues)
        age = max(queue.get("oldest_seconds", 0.0) for queue in queues)
        fresh = max((s for at, s in watch.fresh if inside(at)), default=0.0)
        rows.append(f"| {minute + 1} | {rss} | {lag:.1f} | {records:,} | {age:.1f} | {fresh:.1f} |")
    return rows


def write_results(data: dict, s: dict) -> None:
    run, ledger = data["run"], data["ledger"]
    fmt = ", ".join
    other = f", other {s['other_statuses']}" if s["other_statuses"] else ""
    drained = data["drained_s"]
    drained_text = f"not within {DRAIN_SECONDS} s" if drained is None else f"{drained:.1f} s"
    verdicts = "\n".join(
        f"| {name} | {'ok' if passed else '**FAILED**'} |" for name, passed in s["checks"].items()
    )
    section = f"""{BEGIN}
## Soak (`python -m bench soak`, issue 11)

{data["started"]:%Y-%m-%d %H:%M} UTC, {SECONDS} s at c={CONNECTIONS}.
Machine: {machine_line()}; shared with other work
(load average {data["load"][0]:.1f} before, {data["load"][1]:.1f} at the end of the load).
The stack as `make serve` runs it: uvicorn 2 workers (config.httpguard's protocol, uvloop),
DEBUG off, PostgreSQL + Redis, `ledger_writer` and `rollups_fold --loop` beside them;
bench.fake_upstream behind. Load: one wrk run, bench/mix.lua (a cycle of ten chat calls:
3 streamed; OpenAI and Anthropic shapes). Sampled: fold lag every second
(bench.foldlag: a marker on the newest pending delta, lag until it is folded) and the
`/healthz` queue every second, worker RSS every {SAMPLE_SECONDS} s.

| figure | value | target |
|---|---|---|
| calls answered (wrk) | {s["answered"]:,} ({s["rps"]:,.0f} req/s), \
p50 {run["p50_us"] / 1000:.1f} ms, p99 {run["p99_us"] / 1000:.1f} ms | |
| events in the ledger | {s["recorded"]:,}: {ledger.get("success", 0):,} success, \
{ledger.get("cancelled", 0):,} cancelled{other}; \
{s["streamed_share"]:.0%} streamed | answered + ≤ {CONNECTIONS} in flight at the end \
(here {s["extra"]:+}) |
| errors | wrk: {_errors(run)}; \
sampler {len(data["watch"].errors)}; log lines with ERROR/Traceback {data["log_errors"]} | 0 |
| web-worker RSS, MB (after {WARMUP_SECONDS} s → end) | {fmt(f"{v:.0f}" for v in s["rss_base"])} → \
{fmt(f"{v:.0f}" for v in s["rss_end"])}; largest drift {fmt(f"{d:.1%}" for d in s["rss_drift"])} \
| ±10 % |
| fold lag (delta committed → folded) | max **{s["lag_max"]:.1f} s**, median {s["lag_p50"]:.1f} s \
({s["lag_markers"]} markers) | ≤ 10 s |
| hand-off queue (`/healthz`, every second) | max {s["queue_records_max"]:,} records, \
oldest waiting {s["queue_age_max"]:.1f} s | |
| call → dashboards, measured (a probe call every {PROBE_SECONDS} s: answer → its \
customer's CustomerRollup row) | max **{s["fresh_max"]:.1f} s**, p95 {s["fresh_p95"]:.1f} s, \
median {s["fresh_p50"]:.1f} s ({s["probes"]}) | ≤ 10 s (the README's promise) |
| call → dashboards, upper bound (worst queue wait + worst fold lag) | \
{s["fresh_bound"]:.1f} s | |
| drained after the load (queue written, deltas folded) | {drained_text} | |

| check | |
|---|---|
{verdicts}

Per minute (RSS at the minute's last sample; the worst lag and queue in it):

| minute | worker RSS MB | fold lag max s | queue records max | queue oldest s | call → dash. s |
|---|---|---|---|---|---|
{chr(10).join(_minutes(data["watch"]))}
{END}"""
    section_write(section, begin=BEGIN, end=END)


def run() -> list[Result]:
    data = measure()
    s = summarise(data)
    write_results(data, s)
    checks = "; ".join(f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in s["checks"].items())
    return [
        Result(
            f"soak: time per request at c={CONNECTIONS}, {SECONDS} s, 30 % streamed",
            1e6 / s["rps"],
            note=(
                f"{s['answered']:,} answered, {s['recorded']:,} in the ledger "
                f"({s['extra']:+}); RSS MB {s['rss_base']} → {s['rss_end']}; {checks}"
            ),
        ),
        Result(
            "soak: worst fold lag",
            s["lag_max"] * 1e6,
            limit_us=FOLD_LAG_S * 1e6,
            note=f"median {s['lag_p50']:.1f} s; queue max {s['queue_records_max']:,} records",
        ),
    ]
