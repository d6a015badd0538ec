"""Benchmark: cd7kit's memory-lean single-cell path vs plain scanpy's default recipe, same data.

    python benchmarks/bench_singlecell.py --cells 20000            # while developing
    python benchmarks/bench_singlecell.py --cells 100000 --threads 2
    python benchmarks/bench_singlecell.py --cells 1000000 --no-umap

The data are simulated (cd7kit.singlecell.sim, N cells x 20,000 genes, float32 CSR) and written to
a temporary h5ad. Each pipeline then runs in its own subprocess (so peak memory is its own:
``ru_maxrss`` of that process, which includes reading the file) with the same thread count:

* cd7kit: per-sample MAD QC -> shifted log (size factors only) -> batch-aware HVG from sparse sums
  -> PCA on the HVG columns with implicit centring -> kNN -> Leiden -> UMAP; counts stay the only
  matrix (no counts layer, no log copy, no dense scaling);
* scanpy default recipe (pbmc3k / sc-best-practices tutorial): calculate_qc_metrics, filter_cells
  (200 genes), filter_genes (3 cells), counts layer copy, normalize_total + log1p, HVG (seurat,
  batch-aware, 2000), raw, HVG subset, scale (max 10, dense), PCA (arpack), kNN, Leiden, UMAP.

Prints one table (seconds per step, total, peak RSS) and the ratios cd7kit / scanpy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB on Linux


def _limit_threads(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def worker_cd7kit(path: str, threads: int, do_umap: bool) -> dict:
    import anndata as ad

    from cd7kit.singlecell import pp, tl

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    a = ad.read_h5ad(path)
    t["read"] = time.perf_counter() - t0
    steps: list[tuple[str, float]] = []

    def progress(name: str) -> None:
        steps.append((name, time.perf_counter()))

    t1 = time.perf_counter()
    pp.run(a, "sample", do_doublets=False, do_umap=do_umap, n_threads=threads, exclude_from_hvg=["CAR"],
           progress=progress)
    end = time.perf_counter()
    marks = steps + [("end", end)]
    for (name, s), (_, e) in zip(marks[:-1], marks[1:], strict=True):
        t[name.split(" (")[0]] = e - s
    t["pipeline_total"] = end - t1
    t2 = time.perf_counter()
    tl.annotate(a)
    t["annotation (extra)"] = time.perf_counter() - t2
    truth = a.obs["true_cell_type"].astype(str).to_numpy()
    acc = float((a.obs["cell_type"].astype(str).to_numpy() == truth).mean())
    return {"times": t, "peak_rss_gib": _peak_rss_gib(), "n_cells_after_qc": int(a.n_obs), "accuracy": acc}


def worker_scanpy(path: str, threads: int, do_umap: bool) -> dict:
    import anndata as ad
    import scanpy as sc

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    a = ad.read_h5ad(path)
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
    if do_umap:
        sc.tl.umap(a, random_state=0)
        s = tick("UMAP", s)
    t["pipeline_total"] = time.perf_counter() - t1
    return {"times": t, "peak_rss_gib": _peak_rss_gib(), "n_cells_after_qc": int(a.n_obs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--patients", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-umap", action="store_true")
    ap.add_argument("--only", choices=["cd7kit", "scanpy"], default=None)
    ap.add_argument("--data", default=None, help="reuse an h5ad instead of simulating")
    ap.add_argument("--worker", choices=["cd7kit", "scanpy"], help=argparse.SUPPRESS)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    do_umap = not args.no_umap
    if args.worker:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        _limit_threads(args.threads)
        fn = worker_cd7kit if args.worker == "cd7kit" else worker_scanpy
        res = fn(args.data, args.threads, do_umap)
        Path(args.json_out).write_text(json.dumps(res))
        return

    tmp = Path(tempfile.mkdtemp(prefix="cd7kit_bench_"))
    data = Path(args.data) if args.data else tmp / "sim.h5ad"
    gen_s = float("nan")
    if not args.data:
        from cd7kit.singlecell.sim import simulate

        t0 = time.perf_counter()
        a = simulate(args.cells, args.patients, seed=args.seed, n_genes=args.genes)
        gen_s = time.perf_counter() - t0
        nnz = a.X.nnz / a.n_obs
        a.write_h5ad(data)
        del a
        print(f"simulated {args.cells:,} cells x {args.genes:,} genes in {gen_s:.1f} s ({nnz:.0f} nnz/cell); "
              f"file {data.stat().st_size / 1e9:.2f} GB")
    results: dict[str, dict] = {}
    for name in ("cd7kit", "scanpy"):
        if args.only and name != args.only:
            continue
        out = tmp / f"{name}.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(max(args.threads, 1)))
        cmd = [sys.executable, __file__, "--worker", name, "--data", str(data), "--threads", str(args.threads),
               "--json-out", str(out)] + (["--no-umap"] if not do_umap else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            results[name] = {"error": f"exit {proc.returncode} (killed for memory?)", "wall_s": wall}
            continue
        results[name] = json.loads(out.read_text())
        results[name]["wall_s"] = wall

    steps: list[str] = []
    for r in results.values():
        for k in r.get("times", {}):
            if k not in steps and k != "pipeline_total":
                steps.append(k)
    print(f"\nsingle-cell benchmark: {args.cells:,} cells x {args.genes:,} genes, threads={args.threads}, "
          f"umap={do_umap}")
    print(f"{'step':<28}" + "".join(f"{n:>14}" for n in results))
    for s in steps:
        print(f"{s:<28}" + "".join(f"{r.get('times', {}).get(s, float('nan')):>14.1f}" for r in results.values()))
    print(f"{'pipeline total (s)':<28}" + "".join(f"{r.get('times', {}).get('pipeline_total', float('nan')):>14.1f}"
                                                 for r in results.values()))
    print(f"{'process wall (s)':<28}" + "".join(f"{r.get('wall_s', float('nan')):>14.1f}" for r in results.values()))
    print(f"{'peak RSS (GiB)':<28}" + "".join(f"{r.get('peak_rss_gib', float('nan')):>14.2f}" for r in results.values()))
    if "cd7kit" in results and "scanpy" in results and "times" in results["cd7kit"] and "times" in results["scanpy"]:
        c, s = results["cd7kit"], results["scanpy"]
        print(f"\ncd7kit / scanpy: time {c['times']['pipeline_total'] / s['times']['pipeline_total']:.2f}x, "
              f"peak memory {c['peak_rss_gib'] / s['peak_rss_gib']:.2f}x "
              f"(scanpy uses {s['peak_rss_gib'] / c['peak_rss_gib']:.2f}x the memory)")
    if "cd7kit" in results and "accuracy" in results["cd7kit"]:
        print(f"cd7kit annotation accuracy vs planted labels: {results['cd7kit']['accuracy']:.3f}")
    (tmp / "results.json").write_text(json.dumps({"args": vars(args), "generate_s": gen_s, "results": results}, indent=1))
    print(f"results: {tmp / 'results.json'}")


if __name__ == "__main__":
    main()
