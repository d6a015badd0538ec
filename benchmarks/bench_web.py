"""Web latency with a 1,000-subject virtual study: the overview and subject timeline pages under 20
concurrent clients on loopback, p50 and p95, against /healthz measured the same way in the same run
(the server's own floor).

    python benchmarks/bench_web.py [--subjects 1000] [--clients 20] [--seconds 10] [--client wrk|httpx]

The server runs in its own process, as ``cd7kit serve`` does (one uvicorn worker). The load comes from
``wrk`` (Debian package ``wrk``; 20 keep-alive connections on 2 threads, a Lua script cycling through the
pages and reporting p50/p95) when it is installed, otherwise from asyncio + httpx clients in this process
(each client's connection is opened before timing starts; the Python client itself adds latency). Engine
results are computed once per stored study version (the first request of each page pays for them; the
script warms each page once before timing, as ``cd7kit serve`` does at start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: str, study_id: str, port: int) -> None:
    """Server process: the app on the stored study, one investigator session whose token goes to stdout."""
    import uvicorn

    from cd7kit.store import open_store
    from cd7kit.web import create_app

    app = create_app(open_store(db), study_id, secure_cookies=False)
    token, _ = app.state.sessions.create("bench", "Bench", "investigator")
    t0 = time.perf_counter()
    app.state.warm()  # what cd7kit serve starts in the background
    print(json.dumps({"token": token, "warm_s": time.perf_counter() - t0}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _start_server(db: str, study_id: str) -> tuple[subprocess.Popen, str, str, float]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", db, study_id, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    hello = json.loads(proc.stdout.readline())
    token = hello["token"]
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, token, float(hello["warm_s"])
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


async def _load(base: str, cookie: str, paths: list[str], clients: int, total: int) -> list[float]:
    lat: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(paths[i % len(paths)])

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, cookies={"cd7kit_session": cookie}, timeout=120) as c:
            await c.get("/healthz")  # open the connection before timing
            while not queue.empty():
                p = queue.get_nowait()
                t0 = time.perf_counter()
                r = await c.get(p)
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200, (p, r.status_code)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return lat


_WRK_LUA = r"""
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Cookie"] = "cd7kit_session=%s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"p50\": %%f, \"p95\": %%f, \"n\": %%d, \"errors\": %%d, \"bad_status\": %%d}\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _wrk(base: str, cookie: str, paths: list[str], clients: int, seconds: int) -> tuple[float, float, int]:
    """p50 and p95 in ms and the number of requests, from wrk with ``clients`` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA % (", ".join(json.dumps(p) for p in paths), cookie))
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", f.name, base],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.split("WRKJSON", 1)[1])
    if res["errors"] or res["bad_status"]:
        raise RuntimeError(f"wrk saw {res['errors']} socket errors and {res['bad_status']} non-2xx responses")
    return res["p50"], res["p95"], int(res["n"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200, help="per page, httpx client")
    ap.add_argument("--seconds", type=int, default=10, help="per page, wrk client")
    ap.add_argument("--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    ap.add_argument("--serve", nargs=3, metavar=("DB", "STUDY", "PORT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a.serve[0], a.serve[1], int(a.serve[2]))
        return
    from cd7kit.sim import simulate_cohort
    from cd7kit.store import open_store

    t0 = time.perf_counter()
    study = simulate_cohort("NCT06849401", n=a.subjects, seed=1)
    study = study.replace(meta={**dict(study.meta), "study_id": "BENCH"})
    t_sim = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp())
    store = open_store(str(tmp / "bench.sqlite"))
    t0 = time.perf_counter()
    store.save_study(study, actor="bench", role="system")
    t_store = time.perf_counter() - t0
    store.close()
    proc, base, token, t_engines = _start_server(str(tmp / "bench.sqlite"), "BENCH")
    try:
        sids = study.subject_ids
        timeline_paths = [f"/subjects/{sids[i]}" for i in np.linspace(0, len(sids) - 1, 10).astype(int)]
        with httpx.Client(base_url=base, cookies={"cd7kit_session": token}, timeout=600) as c:
            t0 = time.perf_counter()
            for p in ["/", *timeline_paths]:
                assert c.get(p).status_code == 200
            t_warm = time.perf_counter() - t0
        rows = []
        for name, paths in (("/healthz (floor)", ["/healthz"]), ("overview /", ["/"]), ("timeline /subjects/{id}", timeline_paths)):
            if a.client == "wrk":
                rows.append((name, *_wrk(base, token, paths, a.clients, a.seconds)))
            else:
                lat = asyncio.run(_load(base, token, paths, a.clients, a.requests))
                q = np.quantile(lat, [0.5, 0.95])
                rows.append((name, 1000 * q[0], 1000 * q[1], len(lat)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"virtual study: {a.subjects} subjects, {len(study.observations):,} observations; simulate {t_sim:.1f} s, store {t_store:.1f} s, server warm-up (engine results) {t_engines:.1f} s, first render of 11 pages {t_warm:.1f} s")
    print(f"{'page':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'n':>5s}  ratio p95/floor")
    floor = rows[0][2]
    for name, p50, p95, n in rows:
        print(f"{name:28s} {p50:8.1f} {p95:8.1f} {n:5d}  {p95 / floor:6.1f}x")
    print(f"clients: {a.clients} ({a.client}); median of all: {statistics.median([r[1] for r in rows]):.1f} ms")


if __name__ == "__main__":
    main()
