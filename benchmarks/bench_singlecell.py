"""Benchmark: cd7kit's single-cell pipeline (in memory and out-of-core) vs plain scanpy's default recipe.

    python benchmarks/bench_singlecell.py --cells 20000                      # while developing
    python benchmarks/bench_singlecell.py --cells 100000 --threads 2 --no-umap   # the issue's 100k comparison
    python benchmarks/bench_singlecell.py --cells 1000000 --threads 2 --no-umap --only cd7kit-dask --mem-cap-gib 20

The data are simulated (cd7kit.singlecell.sim, N cells x 20,000 genes) and written to an .h5ad chunk by
chunk (``sim.write_h5ad``; one chunk of cells in memory) in a subprocess. Each pipeline then runs in
its own subprocess with the same thread count, so its peak memory is its own (``ru_maxrss`` of that
process, which includes reading the file):

* ``cd7kit``: ``pp.read`` (whole file in memory) -> per-sample MAD QC -> shifted log (size factors
  only) -> batch-aware HVG from sparse sums -> PCA from the blockwise HVG covariance -> kNN -> Leiden
  -> UMAP, then marker annotation (timed apart; scanpy's recipe has none); the counts stay the only matrix (no counts layer, no log copy, no
  dense scaling);
* ``cd7kit-dask``: the same ``pp.run`` / ``tl.annotate`` on ``pp.read(..., backend="dask")``: the
  counts stay on disk and are read in row blocks of ``--chunk-size`` cells (out-of-core);
* ``scanpy`` default recipe (pbmc3k / sc-best-practices tutorial): calculate_qc_metrics, filter_cells
  (200 genes), filter_genes (3 cells), counts layer copy, normalize_total + log1p, HVG (seurat,
  batch-aware, 2000), raw, HVG subset, scale (max 10, dense), PCA (arpack), kNN, Leiden, UMAP.

Before the timed pipelines, an untimed warm-up subprocess (``--no-warmup`` skips it) runs cd7kit's
pipeline on 9,000 simulated cells so that numba's on-disk caches (cd7kit's kernels, pynndescent's
cached functions) are filled and the order of the pipelines does not decide the comparison; numba
functions that are not cached are still compiled inside every timed pipeline.

Every subprocess is capped so that a run cannot take a shared machine down: the parent samples its
resident memory every 0.2 s and kills it above ``--mem-cap-gib`` (default 18 GiB: scanpy's recipe
needs 13.1 GiB at 100,000 cells; leave room for others on a shared 24 GiB machine), and the
subprocess's address space is limited to 1.5x that (RLIMIT_AS) as a backstop. A pipeline that hits
the cap is reported with the memory it had reached. Prints one table (seconds per step, total, peak
memory) and the ratios against scanpy measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORKERS = ("cd7kit", "cd7kit-dask", "scanpy")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB on Linux


def _limit_threads(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def worker_simulate(args: argparse.Namespace) -> dict:
    from cd7kit.singlecell.sim import write_h5ad

    t0 = time.perf_counter()
    path = write_h5ad(args.data, args.cells, args.patients, seed=args.seed, n_genes=args.genes)
    import h5py

    with h5py.File(path) as f:
        nnz = int(f["X/indptr"][-1])
    return {"generate_s": time.perf_counter() - t0, "nnz": nnz, "nnz_per_cell": nnz / args.cells,
            "file_gb": path.stat().st_size / 1e9, "peak_rss_gib": _peak_rss_gib()}


def worker_warmup(args: argparse.Namespace) -> dict:
    """Fill numba's on-disk caches (cd7kit's kernels, pynndescent, umap) on a small data set, untimed.

    Without it the first pipeline in a fresh environment also pays the one-time compilation of
    every ``cache=True`` kernel and the later ones do not, so the order of the pipelines would
    decide the comparison. Functions that numba does not cache are compiled in every process,
    by every pipeline alike (both use pynndescent through the same transformer).
    """
    from cd7kit.singlecell import pp, tl
    from cd7kit.singlecell.sim import simulate

    t0 = time.perf_counter()
    a = simulate(9000, 7, seed=args.seed, n_genes=500)  # >= 8,192 cells: the pynndescent path of both pipelines
    pp.run(a, "sample", do_doublets=False, do_umap=not args.no_umap, n_threads=args.threads, exclude_from_hvg=["CAR"])
    tl.annotate(a)
    return {"warmup_s": time.perf_counter() - t0, "peak_rss_gib": _peak_rss_gib()}


def _cd7kit(args: argparse.Namespace, backend: str) -> dict:
    from cd7kit.singlecell import pp, tl

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    a = pp.read(args.data, backend=backend, chunk_size=args.chunk_size)
    t["read"] = time.perf_counter() - t0
    steps: list[tuple[str, float]] = []

    def progress(name: str) -> None:
        steps.append((name, time.perf_counter()))

    t1 = time.perf_counter()
    pp.run(a, "sample", do_doublets=False, do_umap=not args.no_umap, n_threads=args.threads, exclude_from_hvg=["CAR"],
           progress=progress)
    end = time.perf_counter()
    marks = steps + [("end", end)]
    for (name, s), (_, e) in zip(marks[:-1], marks[1:], strict=True):
        t[name.split(" (")[0]] = e - s
    t["pipeline_total"] = end - t1
    t2 = time.perf_counter()
    tl.annotate(a)  # not in scanpy's recipe: timed apart, but inside the peak memory
    t["annotation (extra)"] = time.perf_counter() - t2
    truth = a.obs["true_cell_type"].astype(str).to_numpy()
    acc = float((a.obs["cell_type"].astype(str).to_numpy() == truth).mean())
    return {"times": t, "peak_rss_gib": _peak_rss_gib(), "n_cells_after_qc": int(a.n_obs), "accuracy": acc,
            "counts_stayed_on_disk": bool(pp.is_lazy(a.X)) if backend == "dask" else None}


def worker_cd7kit(args: argparse.Namespace) -> dict:
    return _cd7kit(args, "memory")


def worker_cd7kit_dask(args: argparse.Namespace) -> dict:
    return _cd7kit(args, "dask")


def worker_scanpy(args: argparse.Namespace) -> dict:
    import anndata as ad
    import scanpy as sc

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    a = ad.read_h5ad(args.data)
    t["read"] = time.perf_counter() - t0

    def tick(name: str, t_start: float) -> float:
        now = time.perf_counter()
        t[name] = now - t_start
        return now

    s = t1 = time.perf_counter()
    a.var["mt"] = a.var_names.str.startswith("MT-")
    sc.pp.calculate_qc_metrics(a, qc_vars=["mt"], inplace=True)
    sc.pp.filter_cells(a, min_genes=200)
    sc.pp.filter_genes(a, min_cells=3)
    s = tick("QC", s)
    a.layers["counts"] = a.X.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    s = tick("normalisation", s)
    sc.pp.highly_variable_genes(a, n_top_genes=2000, batch_key="sample")
    a.raw = a
    a = a[:, a.var["highly_variable"]].copy()
    s = tick("highly variable genes", s)
    sc.pp.scale(a, max_value=10)
    sc.tl.pca(a, svd_solver="arpack", random_state=0)
    s = tick("PCA", s)
    # stock scanpy 1.11 + pynndescent 0.7 fails above 8,192 cells (csr_array has no getnnz); use the
    # same pynndescent parameters through cd7kit's csr_matrix wrapper so the baseline can run at all
    from cd7kit.singlecell.pp import _NNDescentCSR

    tr = _NNDescentCSR(15, a.n_obs, random_state=0) if a.n_obs >= 8192 else None
    sc.pp.neighbors(a, n_neighbors=15, random_state=0, transformer=tr)
    s = tick("neighbours", s)
    sc.tl.leiden(a, flavor="igraph", n_iterations=2, directed=False, random_state=0)
    s = tick("Leiden", s)
    if not args.no_umap:
        sc.tl.umap(a, random_state=0)
        s = tick("UMAP", s)
    t["pipeline_total"] = time.perf_counter() - t1
    return {"times": t, "peak_rss_gib": _peak_rss_gib(), "n_cells_after_qc": int(a.n_obs)}


def _run_capped(cmd: list[str], env: dict, cap_gib: float) -> tuple[int, float, float, bool]:
    """Run ``cmd``; kill it when its resident memory passes ``cap_gib``. Returns (rc, wall, sampled peak, killed)."""
    import psutil

    as_cap = int(cap_gib * 1.5 * 1024**3)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_cap, as_cap))

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, preexec_fn=limit)  # noqa: PLW1509 - only setrlimit, no threads yet
    peak = 0.0
    killed = False
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak, killed
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = p.memory_info().rss / 1024**3
            except psutil.Error:
                return
            peak = max(peak, rss)
            if rss > cap_gib:
                killed = True
                os.kill(proc.pid, signal.SIGKILL)
                return
            stop.wait(0.2)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    return rc, time.perf_counter() - t0, peak, killed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--patients", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=5_000, help="cells per block of the dask backend")
    ap.add_argument("--no-umap", action="store_true")
    ap.add_argument("--only", nargs="+", choices=WORKERS, default=None)
    ap.add_argument("--data", default=None, help="reuse an h5ad instead of simulating")
    ap.add_argument("--keep-data", action="store_true", help="keep the simulated h5ad (default: deleted)")
    ap.add_argument("--tmpdir", default=None, help="where the simulated h5ad goes (default: system temp)")
    ap.add_argument("--mem-cap-gib", type=float, default=18.0, help="kill a pipeline above this resident memory")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the untimed run that fills numba's on-disk caches before the timed pipelines")
    ap.add_argument("--worker", choices=("simulate", "warmup", *WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        _limit_threads(args.threads)
        fn = {"simulate": worker_simulate, "warmup": worker_warmup, "cd7kit": worker_cd7kit, "cd7kit-dask": worker_cd7kit_dask,
              "scanpy": worker_scanpy}[args.worker]
        Path(args.json_out).write_text(json.dumps(fn(args)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="cd7kit_bench_", dir=args.tmpdir))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(max(args.threads, 1)))
    base = [sys.executable, __file__, "--cells", str(args.cells), "--genes", str(args.genes), "--patients",
            str(args.patients), "--seed", str(args.seed), "--threads", str(args.threads), "--chunk-size",
            str(args.chunk_size)] + (["--no-umap"] if args.no_umap else [])
    data = Path(args.data) if args.data else tmp / "sim.h5ad"
    sim: dict = {}
    try:
        if not args.data:
            out = tmp / "simulate.json"
            rc, wall, peak, killed = _run_capped(base + ["--worker", "simulate", "--data", str(data), "--json-out", str(out)],
                                                 env, args.mem_cap_gib)
            if rc != 0:
                raise SystemExit(f"simulation failed (exit {rc}{', killed at the memory cap' if killed else ''})")
            sim = json.loads(out.read_text())
            print(f"simulated {args.cells:,} cells x {args.genes:,} genes in {sim['generate_s']:.1f} s "
                  f"({sim['nnz_per_cell']:.0f} nnz/cell, nnz {sim['nnz']:,}); file {sim['file_gb']:.2f} GB; "
                  f"generator peak RSS {sim['peak_rss_gib']:.2f} GiB")
        warm: dict = {}
        if not args.no_warmup:
            out = tmp / "warmup.json"
            rc, wall, peak, killed = _run_capped(base + ["--worker", "warmup", "--data", str(data), "--json-out", str(out)],
                                                 env, args.mem_cap_gib)
            if rc == 0 and out.exists():
                warm = json.loads(out.read_text())
                print(f"warm-up (numba caches, 9,000 cells, untimed): {warm['warmup_s']:.1f} s")
            else:
                print(f"warm-up failed (exit {rc}); the first pipeline pays numba's compilation")
        results: dict[str, dict] = {}
        for name in args.only or WORKERS:
            out = tmp / f"{name}.json"
            rc, wall, peak, killed = _run_capped(base + ["--worker", name, "--data", str(data), "--json-out", str(out)],
                                                 env, args.mem_cap_gib)
            if rc != 0 or not out.exists():
                why = f"killed at the {args.mem_cap_gib:g} GiB cap" if killed else f"exit {rc}"
                results[name] = {"error": why, "wall_s": wall, "sampled_peak_rss_gib": peak}
                print(f"{name}: failed ({why}; resident memory reached {peak:.2f} GiB after {wall:.0f} s)")
                continue
            results[name] = json.loads(out.read_text())
            results[name].update(wall_s=wall, sampled_peak_rss_gib=peak)
            print(f"{name}: done in {wall:.0f} s, peak RSS {results[name]['peak_rss_gib']:.2f} GiB")
    finally:
        if not args.keep_data and not args.data:
            data.unlink(missing_ok=True)

    steps: list[str] = []
    for r in results.values():
        for k in r.get("times", {}):
            if k not in steps and k != "pipeline_total":
                steps.append(k)
    nan = float("nan")
    print(f"\nsingle-cell benchmark: {args.cells:,} cells x {args.genes:,} genes, threads={args.threads}, "
          f"umap={not args.no_umap}, dask chunk={args.chunk_size:,} cells")
    print(f"{'step (s)':<28}" + "".join(f"{n:>14}" for n in results))
    for step in steps:
        print(f"{step:<28}" + "".join(f"{r.get('times', {}).get(step, nan):>14.1f}" for r in results.values()))
    rows = [("pipeline total (s)", lambda r: r.get("times", {}).get("pipeline_total", nan), ".1f"),
            ("process wall (s)", lambda r: r.get("wall_s", nan), ".1f"),
            ("peak RSS (GiB)", lambda r: r.get("peak_rss_gib", nan), ".2f"),
            ("sampled peak RSS (GiB)", lambda r: r.get("sampled_peak_rss_gib", nan), ".2f"),
            ("cells after QC", lambda r: r.get("n_cells_after_qc", nan), ",.0f"),
            ("accuracy vs planted", lambda r: r.get("accuracy", nan), ".3f")]
    for label, get, fmt in rows:
        print(f"{label:<28}" + "".join(f"{format(get(r), fmt):>14}" for r in results.values()))
    for name, r in results.items():
        if "error" in r:
            print(f"{name}: {r['error']} (resident memory reached {r['sampled_peak_rss_gib']:.2f} GiB)")
    ref = results.get("scanpy", {})
    for name in ("cd7kit", "cd7kit-dask"):
        c = results.get(name, {})
        if "times" in c and "times" in ref:
            print(f"{name} / scanpy: time {c['times']['pipeline_total'] / ref['times']['pipeline_total']:.2f}x, "
                  f"peak memory {c['peak_rss_gib'] / ref['peak_rss_gib']:.2f}x "
                  f"(scanpy uses {ref['peak_rss_gib'] / c['peak_rss_gib']:.2f}x the memory)")
    (tmp / "results.json").write_text(json.dumps({"args": vars(args), "simulation": sim, "warmup": warm, "results": results},
                                                   indent=1))
    print(f"results: {tmp / 'results.json'}")
    if not args.keep_data and not args.data:
        for p in tmp.glob("*.h5ad"):
            p.unlink()


if __name__ == "__main__":
    main()
