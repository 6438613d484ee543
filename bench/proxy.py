"""The proxy under load: direct-to-upstream, the floor and the proxy, same run.

`python -m bench proxy` (or `make bench`). Production-style: uvicorn, 2
workers, uvloop + httptools, DEBUG off, PostgreSQL + Redis (DATABASE_URL /
REDIS_URL when they point at them, else a local `aispendtrack_bench`
database and Redis db 5), the ledger writer (`manage.py ledger_writer`)
beside the web workers as `make serve` runs it. A fast fake upstream
(bench.fake_upstream) answers a canned chat completion; wrk (Debian's
/usr/bin/wrk, bench/post.lua) loads it directly, through the floor (a raw
ASGI + aiohttp relay, bench.floor, served alike) and through the proxy,
alternating, ROUNDS times; figures are medians, ratios are against the
floor of the same round. Then a soak to SOAK_REQUESTS for worker RSS, a ledger count (every
proxied call recorded), and the ledger's ingest rate (bench.proxy_ingest).
Figures go to stdout and bench/RESULTS.md (the proxy section).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import Result
from bench.proxy_report import write_results

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
SOAK_REQUESTS = int(os.environ.get("BENCH_SOAK_REQUESTS", "100000"))
WORKERS = 2
# `make serve`'s protocol class: the request limits, and the hang-up hook the
# endpoint uses instead of a watcher task per call.
GUARDED = "config.httpguard:GuardedHttpToolsProtocol"
TARGETS = {"added_p50_us": 1000, "rps_c32": 850, "ingest_per_s": 10000}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(upstream_port: int) -> dict[str, str]:
    env = dict(os.environ)
    database = env.get("DATABASE_URL", "")
    if not database.startswith("postgres"):
        database = "postgres://postgres@127.0.0.1:5432/aispendtrack_bench"
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = "redis://127.0.0.1:6379/5"
    env.update(
        DATABASE_URL=database,
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-0123456789-0123456789-0123456789",  # noqa: S106
        DJANGO_SETTINGS_MODULE="config.settings",
        AISPENDTRACK_UPSTREAM_OPENAI=f"http://127.0.0.1:{upstream_port}",
        AISPENDTRACK_VAR_DIR=str(ROOT / "var" / "bench"),
    )
    return env


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


SETUP_KEY = """
from accounts.models import ApiKey, Organization, Scope
from accounts.services import api_key_issue
org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
ApiKey.objects.filter(organization=org).delete()
row, raw = api_key_issue(organization=org, name="bench", scopes=[Scope.PROXY])
print("KEY", raw, org.pk)
"""


def _setup(env: dict[str, str]) -> tuple[str, int]:
    _ensure_database(env["DATABASE_URL"])
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    # As `make serve` does: calls are priced, so the cost engine is on the measured path.
    subprocess.run(
        [*manage, "sync_prices"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    out = subprocess.run(
        [*manage, "shell", "-c", SETUP_KEY], env=env, check=True, cwd=ROOT, capture_output=True
    ).stdout.decode()
    found = re.search(r"KEY (\S+) (\d+)", out)
    if found is None:
        raise RuntimeError(f"could not create the benchmark key: {out!r}")
    return found.group(1), int(found.group(2))


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def _wrk(url: str, key: str, connections: int, seconds: float, script: str = "post.lua") -> dict:
    """wrk with bench/`script` (post.lua's summary line); totals, latencies, errors."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "/usr/bin/wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(ROOT / "bench" / script),
            url,
        ],
        env={**os.environ, "AST_KEY": key},
        capture_output=True,
        check=True,
    ).stdout.decode()
    data = json.loads(out.split("WRK_JSON ", 1)[1].splitlines()[0])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = data["socket_errors"] + data["status_errors"]
    return data


def _worker_rss_mb(master: int) -> list[float]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    sizes = []
    for pid in children:
        # uvicorn's workers are multiprocessing spawns; skip its resource tracker.
        if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            continue
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            sizes.append(int(match.group(1)) / 1024)
    return sorted(sizes)


def _ledger_count(env: dict[str, str], org_id: int) -> int:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM analytics_usageevent WHERE organization_id = %s", (org_id,)
        ).fetchone()
    return row[0] if row else 0


def _clear_ledger(env: dict[str, str], org_id: int) -> None:
    """An empty ledger for the benchmark's organization, and no hand-off files
    left by an interrupted run: the writer would spend this run writing them."""
    import psycopg

    queue = Path(env["AISPENDTRACK_VAR_DIR"]) / "queue"
    for leftover in queue.glob("*.jsonl*"):
        leftover.unlink()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        for table in (
            "usageevent",
            "hourlyrollup",
            "hourlycoarserollup",
            "dailycoarserollup",
            "dailymodelrollup",
            "customerrollup",
        ):
            conn.execute(
                f"DELETE FROM analytics_{table} WHERE organization_id = %s",  # noqa: S608
                (org_id,),
            )


def _ingest_rate(env: dict[str, str]) -> float:
    out = subprocess.run(
        [PYTHON, "-m", "bench.proxy_ingest"], env=env, cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    found = re.search(r"INGEST ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"ingest benchmark printed no figure: {out!r}")
    return float(found.group(1))


def _uvicorn(app: str, port: int, *, http: str = "httptools") -> list[str]:
    """uvicorn as `make serve` runs it (same workers, loop and parser; `make
    serve`'s own protocol class, config.httpguard's, when `http` names it)."""
    return [
        str(Path(PYTHON).with_name("uvicorn")),
        app,
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={WORKERS}",
        "--loop=uvloop",
        f"--http={http}",
        "--no-access-log",
        "--no-server-header",
        "--no-date-header",
        "--no-proxy-headers",
    ]


def _floor_command(port: int) -> list[str]:
    """The floor, served as the proxy is."""
    return _uvicorn("bench.floor:app", port)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, as make does; the writer drains what the web workers left."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _server_command(port: int) -> list[str]:
    """uvicorn, as `make serve` runs it; BENCH_SERVER=granian for the comparison
    the README's choice of server rests on (granian is not a dependency)."""
    if os.environ.get("BENCH_SERVER") == "granian":
        return [
            str(Path(PYTHON).with_name("granian")),
            "--interface=asgi",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={WORKERS}",
            "--loop=uvloop",
            "--no-ws",
            "config.asgi:application",
        ]
    return _uvicorn("config.asgi:application", port, http=GUARDED)


def prepare(upstream_port: int, log_name: str):
    """(env, key, organization id, log file, fake upstream process): a migrated
    database with the benchmark's key and an empty ledger, the upstream started.
    The caller closes the log and stops the upstream."""
    env = _environment(upstream_port)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    key, org_id = _setup(env)
    _clear_ledger(env, org_id)
    log = open(ROOT / "var" / "bench" / log_name, "wb")  # noqa: SIM115 - the caller closes it
    upstream = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_upstream", str(upstream_port)], cwd=ROOT, stdout=log
    )
    return env, key, org_id, log, upstream


def measure() -> dict:
    upstream_port, proxy_port, floor_port = _free_port(), _free_port(), _free_port()
    env, key, org_id, log, upstream = prepare(upstream_port, "proxy.log")
    server = subprocess.Popen(
        _server_command(proxy_port),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    writer = subprocess.Popen(
        [PYTHON, "manage.py", "ledger_writer"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    floor_env = {**env, "FLOOR_UPSTREAM": f"http://127.0.0.1:{upstream_port}"}
    floor = subprocess.Popen(
        _floor_command(floor_port), env=floor_env, cwd=ROOT, stdout=log, stderr=log
    )
    direct = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    proxied = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    floored = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
    rounds: list[dict] = []
    proxied_requests = 0
    try:
        _wait_port(upstream_port)
        _wait_port(proxy_port)
        _wait_port(floor_port)
        time.sleep(1)  # both workers up
        for url in (direct, floored, proxied):
            warm = _wrk(url, key, 32, 2)
            proxied_requests += warm["requests"] if url == proxied else 0
        rss_start = _worker_rss_mb(server.pid)
        for _ in range(ROUNDS):
            row = {}
            for name, url, conns in (
                ("direct_c1", direct, 1),
                ("floor_c1", floored, 1),
                ("proxy_c1", proxied, 1),
                ("direct_c32", direct, 32),
                ("floor_c32", floored, 32),
                ("proxy_c32", proxied, 32),
            ):
                row[name] = _wrk(url, key, conns, SECONDS)
                if url == proxied:
                    proxied_requests += row[name]["requests"]
            rounds.append(row)
            print(_round_line(row), flush=True)
        rss_mid, mid_requests = _worker_rss_mb(server.pid), proxied_requests
        soak_errors = 0
        while proxied_requests < SOAK_REQUESTS:
            rate = statistics.median(r["proxy_c32"]["rps"] for r in rounds) or 500
            seconds = min(60, max(2, (SOAK_REQUESTS - proxied_requests) / rate + 1))
            soak = _wrk(proxied, key, 32, seconds)
            proxied_requests += soak["requests"]
            soak_errors += soak["errors"]
            print(f"  soak: {soak['requests']:,} calls, {_errors(soak)}", flush=True)
        rss_end = _worker_rss_mb(server.pid)
    finally:
        try:
            _stop(floor)
            _stop(server)  # graceful: calls in flight finish and are handed off
            _stop(writer)  # then the writer writes what is left
        finally:
            upstream.terminate()
            upstream.wait(10)
            log.close()
    recorded = _ledger_count(env, org_id)
    return {
        "rounds": rounds,
        "rss_start": rss_start,
        "rss_mid": rss_mid,
        "rss_end": rss_end,
        "mid_requests": mid_requests,
        "proxied_requests": proxied_requests,
        "recorded": recorded,
        "soak_errors": soak_errors,
        "ingest_per_s": _ingest_rate(env),
    }


def _errors(run: dict) -> str:
    kinds = ("connect", "read", "write", "timeout", "status_errors")
    found = {kind: run[kind] for kind in kinds if run.get(kind)}
    return f"errors {found}" if found else "no errors"


def _round_line(row: dict) -> str:
    errors = "; ".join(f"{name} {_errors(run)}" for name, run in row.items() if run["errors"])
    return (
        f"  round: c=1 p50 direct {row['direct_c1']['p50_us']} µs, floor "
        f"{row['floor_c1']['p50_us']} µs, proxy {row['proxy_c1']['p50_us']} µs | c=32 "
        f"direct {row['direct_c32']['rps']:.0f} req/s, floor {row['floor_c32']['rps']:.0f} "
        f"req/s p99 {row['floor_c32']['p99_us']} µs, proxy {row['proxy_c32']['rps']:.0f} "
        f"req/s p99 {row['proxy_c32']['p99_us']} µs" + (f" | {errors}" if errors else "")
    )


def summarise(data: dict) -> dict:
    rounds = data["rounds"]

    def med(name: str, field: str) -> float:
        return statistics.median(r[name][field] for r in rounds)

    def ratio(over: str, under: str, field: str) -> float:
        """The median of each round's ratio (same-run, same-moment)."""
        return statistics.median(r[over][field] / r[under][field] for r in rounds)

    return {
        "direct_p50_c1": med("direct_c1", "p50_us"),
        "floor_p50_c1": med("floor_c1", "p50_us"),
        "proxy_p50_c1": med("proxy_c1", "p50_us"),
        "added_p50_c1": statistics.median(
            r["proxy_c1"]["p50_us"] - r["direct_c1"]["p50_us"] for r in rounds
        ),
        "floor_added_p50_c1": statistics.median(
            r["floor_c1"]["p50_us"] - r["direct_c1"]["p50_us"] for r in rounds
        ),
        "direct_rps_c32": med("direct_c32", "rps"),
        "floor_rps_c32": med("floor_c32", "rps"),
        "proxy_rps_c32": med("proxy_c32", "rps"),
        "direct_p99_c32": med("direct_c32", "p99_us"),
        "floor_p99_c32": med("floor_c32", "p99_us"),
        "proxy_p99_c32": med("proxy_c32", "p99_us"),
        "rps_vs_floor": ratio("proxy_c32", "floor_c32", "rps"),
        "p99_vs_floor": ratio("proxy_c32", "floor_c32", "p99_us"),
        "errors": sum(r[n]["errors"] for r in rounds for n in r) + data["soak_errors"],
    }


def run() -> list[Result]:
    data = measure()
    s = summarise(data)
    write_results(data, s, seconds=SECONDS, rounds=ROUNDS, workers=WORKERS)
    rps_note = (
        f"req/s at c=32: direct {s['direct_rps_c32']:.0f}, floor {s['floor_rps_c32']:.0f}, "
        f"proxy {s['proxy_rps_c32']:.0f} ({s['rps_vs_floor']:.2f} of the floor, median of "
        f"per-round ratios; target ≥ 0.5); errors {s['errors']}"
    )
    rss = data["rss_start"], data["rss_mid"], data["rss_end"]
    rss_note = (
        "worker RSS MB (start / after {:,} / after {:,} proxied): {} / {} / {}; "
        "ledger rows {:,} for {:,} proxied calls (wrk counts only completed ones)"
    ).format(
        data["mid_requests"],
        data["proxied_requests"],
        *(", ".join(f"{v:.0f}" for v in sizes) for sizes in rss),
        data["recorded"],
        data["proxied_requests"],
    )
    return [
        Result(
            "proxy: p50 at c=1 (baseline: direct)",
            s["proxy_p50_c1"],
            baseline_us=s["direct_p50_c1"],
        ),
        Result(
            "proxy: added p50 at c=1 (baseline: the floor's)",
            s["added_p50_c1"],
            baseline_us=s["floor_added_p50_c1"],
            limit_us=TARGETS["added_p50_us"],
        ),
        Result(
            "proxy: time per request at c=32 (baseline: the floor)",
            1e6 / s["proxy_rps_c32"],
            baseline_us=1e6 / s["floor_rps_c32"],
            limit_us=1e6 / TARGETS["rps_c32"],
            note=rps_note,
        ),
        Result(
            "proxy: p99 at c=32 (baseline: the floor)",
            s["proxy_p99_c32"],
            baseline_us=s["floor_p99_c32"],
            note=f"{s['p99_vs_floor']:.1f}× the floor's (median of per-round ratios; "
            f"target ≤ 3×); {rss_note}",
        ),
        Result(
            "ledger: ingest time per event (usage_record_batch)",
            1e6 / data["ingest_per_s"],
            limit_us=1e6 / TARGETS["ingest_per_s"],
            note=f"{data['ingest_per_s']:,.0f} events/s",
        ),
    ]
