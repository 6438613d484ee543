"""CPU time a proxied call costs, by process class: `python -m bench.proxy_cpu`.

Throughput on a shared 2-core machine swings with whatever else runs; the
CPU a call costs does not. This serves the floor (bench.floor) and the
proxy as bench.proxy does (uvicorn 2 workers, the ledger writer beside
them), loads each with wrk at c=32 for BENCH_CPU_SECONDS, and reads utime +
stime from /proc for each process class: the web workers, the ledger
writer, and the PostgreSQL backends of this database (the writer's COPY
and the workers' gate reads). Printed as µs of CPU per answered call,
ROUNDS times, alternating floor and proxy.

BENCH_CPU_HTTP picks the proxy's protocol class: `guarded` (default, as
`make serve` runs it: config.httpguard) or `httptools` (stock uvicorn).

The trees share one database, migrated by this tree. BENCH_CPU_SQL
(label=file, comma-separated) runs a file's SQL before each of that tree's
windows, every round: a tree whose schema differs (a constraint another
tree's migration drops) gets it back for its own windows.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

from bench.proxy import (
    GUARDED,
    PYTHON,
    ROOT,
    _free_port,
    _ledger_count,
    _stop,
    _uvicorn,
    _wait_port,
    _wrk,
    prepare,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_CPU_SECONDS", "8"))
WORKERS = int(os.environ.get("BENCH_CPU_WORKERS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CPU_CONNECTIONS", "32"))
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _workers(master: int) -> list[int]:
    """uvicorn's worker processes (the master itself when it serves alone)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    spawned = [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return spawned or [master]


def _backends(database_url: str) -> list[int]:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [row[0] for row in rows]


def _classes(server: int, writer: int) -> dict[str, list[int]]:
    return {"workers": _workers(server), "writer": [writer]}


def _sample(classes: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(_cpu(pid) for pid in pids) for name, pids in classes.items()}


def _loaded(url: str, key: str, classes: dict[str, list[int]], database: str = "") -> dict:
    """One wrk run at CONNECTIONS; CPU µs a call per class. With `database`,
    its PostgreSQL backends count too (only the stack under load uses them)."""
    if database:
        classes = {**classes, "postgres": _backends(database)}
    before = _sample(classes)
    run = _wrk(url, key, CONNECTIONS, SECONDS)
    if database:
        time.sleep(1.0)  # the writer finishes the calls it was handed
    after = _sample(classes)
    calls = max(1, run["requests"])
    per_call = {name: (after[name] - before[name]) / calls * 1e6 for name in before}
    return {"rps": run["rps"], "p99_ms": run["p99_us"] / 1000, "us": per_call}


def _schema(database: str, sql: str) -> None:
    """Run a tree's schema SQL (BENCH_CPU_SQL) before its window."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql)


def _serve(root: Path, env: dict[str, str], port: int, http: str, log) -> tuple:
    """uvicorn + the ledger writer of the tree at `root`, with its own hand-off queue."""
    env = {**env, "AISPENDTRACK_VAR_DIR": str(root / "var" / "bench_cpu")}
    protocol = GUARDED if http == "guarded" else "httptools"
    command = _uvicorn("config.asgi:application", port, http=protocol)
    if WORKERS != 2:
        command = [part if part != "--workers=2" else f"--workers={WORKERS}" for part in command]
    server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=log)
    writer = subprocess.Popen(
        [PYTHON, "manage.py", "ledger_writer"], env=env, cwd=root, stdout=log, stderr=log
    )
    return server, writer


def main() -> None:
    """BENCH_CPU_ROOTS: comma-separated source trees to serve side by side
    (label=path; default this tree), each measured in every round."""
    http = os.environ.get("BENCH_CPU_HTTP", "guarded")
    roots = [
        (part.split("=", 1) if "=" in part else (part, part))
        for part in os.environ.get("BENCH_CPU_ROOTS", f"this={ROOT}").split(",")
    ]
    schemas = {
        label: Path(path).read_text()
        for label, path in (
            part.split("=", 1) for part in os.environ.get("BENCH_CPU_SQL", "").split(",") if part
        )
    }
    upstream_port, floor_port = _free_port(), _free_port()
    env, key, org_id, log, upstream = prepare(upstream_port, "proxy_cpu.log")
    served = {}
    for label, root in roots:
        port = _free_port()
        served[label] = (port, *_serve(Path(root), env, port, http, log))
    floor_env = {**env, "FLOOR_UPSTREAM": f"http://127.0.0.1:{upstream_port}"}
    command = _uvicorn("bench.floor:app", floor_port)
    if WORKERS != 2:
        command = [part if part != "--workers=2" else f"--workers={WORKERS}" for part in command]
    floor = subprocess.Popen(command, env=floor_env, cwd=ROOT, stdout=log, stderr=log)
    floored = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
    results: dict[str, list[dict]] = {"floor": [], **{label: [] for label, _ in roots}}
    try:
        for port in (upstream_port, floor_port, *(s[0] for s in served.values())):
            _wait_port(port)
        time.sleep(1)
        _wrk(floored, key, CONNECTIONS, 2)
        urls = {}
        for label, (port, _, _) in served.items():
            urls[label] = f"http://127.0.0.1:{port}/v1/chat/completions"
            _wrk(urls[label], key, CONNECTIONS, 2)
        time.sleep(1)
        classes = {label: _classes(s[1].pid, s[2].pid) for label, s in served.items()}
        floor_classes = {"workers": _workers(floor.pid)}
        for _ in range(ROUNDS):
            f = _loaded(floored, key, floor_classes)
            results["floor"].append(f)
            line = f"floor {f['rps']:6.0f} req/s p99 {f['p99_ms']:5.1f} ms "
            line += f"{f['us']['workers']:4.0f} µs"
            for label in served:
                if label in schemas:
                    _schema(env["DATABASE_URL"], schemas[label])
                p = _loaded(urls[label], key, classes[label], env["DATABASE_URL"])
                results[label].append(p)
                us = p["us"]
                line += (
                    f" | {label} {p['rps']:6.0f} req/s p99 {p['p99_ms']:5.1f} ms workers "
                    f"{us['workers']:4.0f} writer {us['writer']:3.0f} pg {us['postgres']:3.0f}"
                )
            print(line, flush=True)
    finally:
        _stop(floor)
        for _, server, writer in served.values():
            _stop(server)
            _stop(writer)
        upstream.terminate()
        upstream.wait(10)
        log.close()
    print(f"median µs a call ({http}, {WORKERS} workers, c={CONNECTIONS}):")
    for label, rows in results.items():
        medians = {
            name: statistics.median(row["us"][name] for row in rows) for name in rows[0]["us"]
        }
        rps = statistics.median(row["rps"] for row in rows)
        parts = ", ".join(f"{name} {value:.0f}" for name, value in medians.items())
        print(f"  {label}: {parts}; total {sum(medians.values()):.0f}; {rps:.0f} req/s")
    print(f"ledger rows {_ledger_count(env, org_id):,}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
