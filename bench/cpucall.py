"""CPU per proxied call, hub against the bare passthrough, in a few seconds.

Starts the fake Slack, the passthrough and ``hub serve`` (SQLite, and PostgreSQL with
``--pg``) as processes, connects Slack through the hub, then sends the same
``POST /api/integrations/slack/message`` with wrk for a fixed time to each server and
reads the server's own CPU time from /proc before and after. CPU time per answered
request is the figure: unlike requests per second it hardly moves when other work shares
the cores. Each server is measured ``--rounds`` times, alternating, and the median kept.

    .venv/bin/python bench/cpucall.py [--pg] [--seconds 5] [--rounds 3] [--profile]

``--profile`` also runs the hub (PostgreSQL with ``--pg``) once under py-spy (if installed in .venv) and
writes the samples, collapsed, to bench/out/cpucall-profile.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import bench as B  # noqa: E402  (bench/bench.py)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg", action="store_true", help="also measure the hub on PostgreSQL (a private database)")
    p.add_argument("--pg-url", default=os.environ.get("HUB_BENCH_PG_URL", B.DEFAULT_PG))
    p.add_argument("--seconds", type=float, default=5, help="seconds per measured run (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="measured runs per server (default 3)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--profile", action="store_true", help="also record a py-spy profile of the hub (the PostgreSQL one with --pg)")
    p.add_argument("--base", help="also run, side by side, the hub package of this source tree (a checkout of another "
                   "commit) on each database: its figure beside this tree's shows what a change did, under the same load")
    args = p.parse_args()
    from hub.infra.crypto import generate_key

    work = Path(tempfile.mkdtemp(prefix="hub-cpucall-"))
    (work / "logs").mkdir()
    procs = B.Procs(work / "logs")
    wrk = B.Wrk(work)
    pg = None
    hdr = (B.auth_header("bench-user"),)
    keys = generate_key("cpu1")
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        upstream = B.start_upstream(procs, "upstream")
        token = asyncio.run(B.fake_token(upstream))
        passthrough = B.start_passthrough(procs, upstream, token)
        servers = {"passthrough": passthrough}
        urls = {"SQLite": f"sqlite+aiosqlite:///{work}/hub.db"}
        if args.pg:
            pg = B.PgDatabases(args.pg_url)
            urls["PostgreSQL"] = asyncio.run(pg.create("cpucall"))
        for name, db_url in urls.items():
            d = work / name
            d.mkdir()
            cfg = d / "hub.json"
            B.hub_config(cfg, port=B.free_port(), db_url=db_url, slack=upstream, keys=keys)
            if name == "PostgreSQL":
                asyncio.run(B.migrate(db_url))
            hub = B.start_hub(procs, f"hub-{name}", cfg, d)
            asyncio.run(B.connect_flow(hub.url, "bench-user"))
            servers[name] = hub
        if args.base:
            for name in list(urls):
                d = work / f"{name}-base"
                d.mkdir()
                cfg = d / "hub.json"
                db_url = f"sqlite+aiosqlite:///{d}/hub.db" if name == "SQLite" else asyncio.run(pg.create("cpucallbase"))  # type: ignore[union-attr]
                if name != "SQLite":
                    asyncio.run(B.migrate(db_url))
                B.hub_config(cfg, port=B.free_port(), db_url=db_url, slack=upstream, keys=keys)
                servers[f"{name}, base"] = start_base_hub(procs, Path(args.base), cfg, d)
                asyncio.run(B.connect_flow(servers[f"{name}, base"].url, "bench-user"))
        for name, server in servers.items():  # warm-up
            wrk.run(server.url + B.ACTION_PATH, connections=args.connections, seconds=2, headers=hdr)
        for _ in range(args.rounds):
            for name, server in servers.items():
                r = wrk.run(server.url + B.ACTION_PATH, connections=args.connections, seconds=args.seconds, headers=hdr,
                            watch={name: server.proc.pid})
                assert r.bad == 0, f"{name}: {r.bad} bad answers"
                results.setdefault(name, []).append((r.cpu_us(name), r.rate))
        if args.profile:
            profile(servers["PostgreSQL" if args.pg else "SQLite"], wrk, args, hdr)
    finally:
        procs.stop_all()
        if pg is not None:
            asyncio.run(pg.drop_all())
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(c for c, _ in results["passthrough"])
    print(f"\nCPU per request of the server process, {args.connections} connections, median of {args.rounds} x {args.seconds:g} s:\n")
    print("| server | CPU µs per request | × passthrough | req/s (noisy) | runs (µs) |")
    print("|---|---:|---:|---:|---|")
    for name, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        rate = statistics.median(r for _, r in runs)
        print(f"| {name} | {cpu:,.0f} | {cpu / base:.2f}x | {rate:,.0f} | {', '.join(f'{c:.0f}' for c, _ in runs)} |")
    return 0


def start_base_hub(procs: B.Procs, tree: Path, config: Path, cwd: Path) -> B.Server:
    """``hub serve`` with the ``hub`` package of ``tree`` first on the path."""
    port = json.loads(config.read_text())["server"]["port"]
    env = B.hub_env()
    env["PYTHONPATH"] = str(tree.resolve())
    started = time.perf_counter()
    proc = procs.spawn("hub-base", [B.PY, "-m", "hub", "serve", "--config", str(config)], cwd=cwd, env=env)
    url = f"http://127.0.0.1:{port}"
    return B.Server(proc, url, B.wait_ready(url + "/healthz", proc, started), "hub-base")


def profile(server: B.Server, wrk: B.Wrk, args: argparse.Namespace, hdr: tuple[str, ...]) -> None:
    spy = ROOT / ".venv" / "bin" / "py-spy"
    if not spy.exists():
        print("py-spy is not installed in .venv: no profile", file=sys.stderr)
        return
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    target = out / "cpucall-profile.txt"
    rec = subprocess.Popen([str(spy), "record", "--nonblocking", "--gil", "-r", "400", "-f", "raw", "-o", str(target),
                            "-d", str(int(args.seconds) + 2), "-p", str(server.proc.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    wrk.run(server.url + B.ACTION_PATH, connections=args.connections, seconds=args.seconds, headers=hdr)
    rec.wait()
    print(f"profile: {target}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
