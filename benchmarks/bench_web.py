"""Web latency with a 1,000-subject virtual study: the overview and subject timeline pages under 20
concurrent clients on loopback, p50 and p95, against /healthz measured the same way in the same process
(the server's own floor).

    python benchmarks/bench_web.py [--subjects 1000] [--clients 20] [--requests 200]

Engine results are computed once per stored study version (the first request of each page pays for
them; the script warms each page once before timing, as a running server would have).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn


def _serve(app):  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return srv, f"http://127.0.0.1:{port}"


async def _load(base: str, cookie: str, paths: list[str], clients: int, total: int) -> list[float]:
    lat: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(paths[i % len(paths)])

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, cookies={"cd7kit_session": cookie}, timeout=120) as c:
            while not queue.empty():
                p = queue.get_nowait()
                t0 = time.perf_counter()
                r = await c.get(p)
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200, (p, r.status_code)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    from cd7kit.sim import simulate_cohort
    from cd7kit.store import open_store
    from cd7kit.web import create_app

    t0 = time.perf_counter()
    study = simulate_cohort("NCT06849401", n=a.subjects, seed=1)
    study = study.replace(meta={**dict(study.meta), "study_id": "BENCH"})
    t_sim = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp())
    store = open_store(str(tmp / "bench.sqlite"))
    t0 = time.perf_counter()
    store.save_study(study, actor="bench", role="system")
    t_store = time.perf_counter() - t0
    app = create_app(store, "BENCH", secure_cookies=False)
    token, _ = app.state.sessions.create("bench", "Bench", "investigator")
    srv, base = _serve(app)
    sids = study.subject_ids
    timeline_paths = [f"/subjects/{sids[i]}" for i in np.linspace(0, len(sids) - 1, 10).astype(int)]
    with httpx.Client(base_url=base, cookies={"cd7kit_session": token}, timeout=600) as c:
        t0 = time.perf_counter()
        for p in ["/", *timeline_paths]:
            assert c.get(p).status_code == 200
        t_warm = time.perf_counter() - t0
    rows = []
    for name, paths in (("/healthz (floor)", ["/healthz"]), ("overview /", ["/"]), ("timeline /subjects/{id}", timeline_paths)):
        lat = asyncio.run(_load(base, token, paths, a.clients, a.requests))
        q = np.quantile(lat, [0.5, 0.95])
        rows.append((name, 1000 * q[0], 1000 * q[1], len(lat)))
    srv.should_exit = True
    print(f"virtual study: {a.subjects} subjects, {len(study.observations):,} observations; simulate {t_sim:.1f} s, store {t_store:.1f} s, first render of 11 pages {t_warm:.1f} s")
    print(f"{'page':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'n':>5s}  ratio p95/floor")
    floor = rows[0][2]
    for name, p50, p95, n in rows:
        print(f"{name:28s} {p50:8.1f} {p95:8.1f} {n:5d}  {p95 / floor:6.1f}x")
    print(f"clients: {a.clients}; median of all: {statistics.median([r[1] for r in rows]):.1f} ms")


if __name__ == "__main__":
    main()
