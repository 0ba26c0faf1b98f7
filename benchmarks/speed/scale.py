"""Time and peak memory of selection on pools of 10^5 and 10^6 examples at d = 8192 (issue 15).

Run: ``nice -n 10 .venv/bin/python -m benchmarks.speed.scale --data DIR`` from the checkout root (``--sizes 2000``
for a smoke run). Synthetic feature stores are written once under ``--data`` (default ``runs/scale-data``) and
reused; they are large (about 43 GB for both sizes), so keep them out of git and CI. Each operation runs in its
own Python process (this file, run as a script), which reports its wall time (from opening the store to the result,
imports excluded) and its peak RSS (``VmHWM``, which counts the pages of mapped files it touched too).
``--baseline DIR`` also runs another checkout's code (e.g. main before this change) on the 10^5 store, for a
ratio. Writes
``benchmarks/results/scale.json`` and ``scale.md``.

Stores (``a`` = SFT-style, ``b`` = GRPO-style): ``a`` holds ``grad_adam`` (and at 10^5 also ``grad``, both
float32, as the store of the issue's 49 s / 19.4 GB figure; at 10^6 ``grad_adam`` alone, float16),
a 384-d ``embedding``, ``loss``, ``length``, ``pass_rate``, ``dpo_gap``; its validation table 256 rows of
``grad`` and ``pg_grad``. ``b`` holds ``grpo_grad`` (float16), ``grpo_signal``, ``pass_rate``; validation 256
rows of ``grpo_grad``. Gradients are a seeded mix of 64 topic directions plus noise, so scores differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OPS = ("open", "less", "nice", "gradalign_sim", "feature_select", "policy")
BASELINE_OPS = ("open", "less")
EMB_DIM, TOPICS, VAL_ROWS, SHARD_ROWS = 384, 64, 256, 25_000
GOAL_SECONDS, GOAL_RSS_GB = 60.0, 4.0


# synthetic stores ---------------------------------------------------------------------------------------

def _topics(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(TOPICS, dim)).astype(np.float32),
            rng.normal(size=(TOPICS, EMB_DIM)).astype(np.float32) * 3)


def _grads(rng: np.random.Generator, topic: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Topic direction plus uniform noise of std 2 (uniform: several times cheaper to draw than normal)."""
    out = rng.random((len(topic), dirs.shape[1]), dtype=np.float32)
    out -= 0.5
    out *= np.float32(2.0 * np.sqrt(12.0))
    out += dirs[topic]
    return out


def _val(rng: np.random.Generator, dirs: np.ndarray) -> np.ndarray:
    """Validation gradients along a few topics: the pool rows of those topics score highest."""
    return _grads(rng, rng.integers(0, 4, VAL_ROWS), dirs)


def store_path(data: Path, kind: str, n: int) -> Path:
    return data / f"{kind}-{n}"


def write_store(data: Path, kind: str, n: int, dim: int) -> tuple[Path, bool]:
    """Write (or reuse) one synthetic store; returns its folder and whether it was already there."""
    from selectgym.proxies.store import FeatureStore

    root = store_path(data, kind, n)
    grad_dtype = "float32" if (kind == "a" and n <= 100_000) else "float16"
    material = {"synthetic": f"scale-{kind}", "n": n, "dim": dim, "seed": 0, "noise": "uniform"}
    store = FeatureStore.create(root, material, {"note": "synthetic store of benchmarks.speed.scale"}, grad_dtype)
    if store.complete:
        return store.path, True
    dirs, centres = _topics(dim, 0)
    starts = list(range(0, n, SHARD_ROWS))
    done = set(store.finished_shards("train"))
    for s, start in enumerate(starts):
        if s in done:
            continue
        rows = min(SHARD_ROWS, n - start)
        rng = np.random.default_rng([kind == "b", n, s])
        topic = rng.integers(0, TOPICS, rows)
        ids = [f"ex{start + i}" for i in range(rows)]
        if kind == "a":
            arrays = {"grad_adam": _grads(rng, topic, dirs),
                      "embedding": centres[topic] + rng.standard_normal((rows, EMB_DIM), dtype=np.float32),
                      "loss": rng.uniform(0.5, 3.0, rows), "length": rng.integers(5, 500, rows).astype(np.float64),
                      "pass_rate": rng.uniform(0, 1, rows), "dpo_gap": rng.normal(size=rows)}
            if n <= 100_000:
                arrays["grad"] = _grads(rng, topic, dirs)
        else:
            arrays = {"grpo_grad": _grads(rng, topic, dirs), "grpo_signal": (rng.random(rows) < 0.8).astype(np.float32),
                      "pass_rate": rng.uniform(0, 1, rows)}
        store.write_shard("train", s, ids, arrays)
        print(f"  {root.name}: shard {s + 1}/{len(starts)}", flush=True)
    rng = np.random.default_rng([kind == "b", n, 10**6])
    val = {"grad": _val(rng, dirs), "pg_grad": _val(rng, dirs)} if kind == "a" else {"grpo_grad": _val(rng, dirs)}
    if not store.has_table("val"):
        store.write_shard("val", 0, [f"v{j}" for j in range(VAL_ROWS)], val)
    store.mark_complete({"train": len(starts), "val": 1})
    return store.path, False


def train_policy(data: Path, dim: int) -> Path:
    """A small PPO policy on FeatureSelect with 64 clusters, trained on a 4,096-row in-memory pool."""
    from selectgym.agents import AgentConfig, train_agent
    from selectgym.proxies.table import FeatureTable

    path = data / f"policy-64-d{dim}.zip"
    if path.exists():
        return path
    rng = np.random.default_rng(7)
    dirs, centres = _topics(dim, 0)
    n = 4096
    topic = rng.integers(0, TOPICS, n)
    train = FeatureTable([f"t{i}" for i in range(n)], {
        "grad_adam": _grads(rng, topic, dirs), "embedding": centres[topic] + rng.standard_normal((n, EMB_DIM)),
        "loss": rng.uniform(0.5, 3.0, n), "length": rng.integers(5, 500, n).astype(np.float64),
        "pass_rate": rng.uniform(0, 1, n), "dpo_gap": rng.normal(size=n)})
    val = FeatureTable([f"v{j}" for j in range(VAL_ROWS)], {"grad": _val(rng, dirs)})
    cfg = AgentConfig(timesteps=2048, n_envs=4, n_steps=128, budget=0.05, n_clusters=64, batch_size=64,
                      train_grad="grad_adam", reward_kwargs={"train_grad": "grad_adam"}, progress_bar=False,
                      eval_freq=0)
    train_agent(cfg, train, val, out=path)
    return path


def fp16_cost(dim: int, rows: int = 4096) -> dict:
    """What float16 storage costs: the cosine between a gradient and its float16 copy, and LESS's scores."""
    from selectgym.proxies.table import FeatureTable
    from selectgym.selectors.less import LessSelector

    rng = np.random.default_rng(3)
    dirs, _ = _topics(dim, 0)
    x = _grads(rng, rng.integers(0, TOPICS, rows), dirs)
    half = x.astype(np.float16).astype(np.float32)
    cos = np.einsum("ij,ij->i", x.astype(np.float64), half) / np.linalg.norm(x, axis=1) / np.linalg.norm(half, axis=1)
    val = FeatureTable([f"v{j}" for j in range(VAL_ROWS)], {"grad": _val(rng, dirs)})
    ids = [f"ex{i}" for i in range(rows)]
    full = LessSelector().select(FeatureTable(ids, {"grad_adam": x}), val, 0.05, seed=0)
    cut = LessSelector().select(FeatureTable(ids, {"grad_adam": half}), val, 0.05, seed=0)
    return {"rows": rows, "dim": dim, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "less_score_max_abs_diff": float(np.abs(full.pool_scores - cut.pool_scores).max()),
            "less_top5pct_overlap": len(set(full.ids) & set(cut.ids)) / len(full.ids)}


# one operation, in a child process ----------------------------------------------------------------------

def peak_rss_gb() -> float:
    """This process's peak resident set (``VmHWM``: anonymous memory and the pages of mapped files it touched).

    ``resource.getrusage(...).ru_maxrss`` would do, except that Linux carries it over from the parent
    through fork and exec, so a child would report the writer's peak instead of its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

def run_op(op: str, data: Path, n: int, dim: int) -> dict:
    """Open the store and run ``op``; only what this process did counts toward its peak RSS."""
    from selectgym.proxies.store import FeatureStore

    if op in ("policy", "feature_select"):
        import gymnasium  # noqa: F401  (imports are not the operation)
        import torch  # noqa: F401

        from selectgym.envs import FEATURE_SELECT
    start_rss = peak_rss_gb()
    start, start_cpu = time.perf_counter(), time.process_time()
    store = FeatureStore.open(store_path(data, "b" if op == "gradalign_sim" else "a", n))
    train, val = store.table("train"), store.table("val")
    info: dict = {}
    if op in ("less", "nice"):
        from selectgym.selectors import get_selector

        info["selected"] = len(get_selector(op).select(train, val, 0.05, seed=0).ids)
    elif op == "gradalign_sim":
        from selectgym.selectors import get_selector

        chunk = n // 100
        sel = get_selector("gradalign", mode="sim", chunk_size=chunk, q=4).select(train, val, 0.05, seed=0)
        info.update(selected=len(sel.ids), chunk_size=chunk, q=4, rounds=len(sel.info["rounds"]))
    elif op == "feature_select":
        import gymnasium as gym

        env = gym.make(FEATURE_SELECT, table=train, val_table=val, budget=0.05, n_clusters=64, batch_size=64,
                       reward="none", train_grad="grad_adam").unwrapped
        env.reset(seed=0)
        info["cluster_sizes"] = [int(env.sizes.min()), int(env.sizes.max())]
    elif op == "policy":
        from selectgym.agents.apply import apply_policy

        sel = apply_policy(data / f"policy-64-d{dim}.zip", budget=0.05, seed=0, table=train, val_table=val)
        info.update(selected=len(sel.ids), steps=len(sel.info["clusters"]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    rss_gb = peak_rss_gb()
    return {"n": n, "op": op, "seconds": round(seconds, 2), "peak_rss_gb": round(rss_gb, 2),
            "cpu_seconds": round(cpu, 2), "rss_after_imports_gb": round(start_rss, 2), **info}


def child(op: str, data: Path, n: int, dim: int, code: Path | None, timeout: float, threads: int) -> dict:
    cached = cached_share(store_path(data, "b" if op == "gradalign_sim" else "a", n))
    row = _child(op, data, n, dim, code, timeout, threads)
    row["cached_before"] = cached
    return row


def _child(op: str, data: Path, n: int, dim: int, code: Path | None, timeout: float, threads: int) -> dict:
    from benchmarks.envelope import ROOT

    env = dict(os.environ, PYTHONPATH=str(code or ROOT), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", op, "--data", str(data), "--sizes", str(n),
           "--dim", str(dim)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"n": n, "op": op, "seconds": None, "peak_rss_gb": None, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"n": n, "op": op, "seconds": None, "peak_rss_gb": None, "error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cached_share(root: Path) -> float | None:
    """Share of a store's bytes already in the OS page cache (``fincore``), or None where it is missing.

    An operation that finds its store cached reads at memory speed; one that does not reads at disk speed.
    """
    files = [str(p) for p in sorted(root.rglob("*.safetensors"))]
    if not files:
        return None
    try:
        done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", *files],
                              capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    res = size = 0
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            res, size = res + int(parts[0]), size + int(parts[1])
    return round(res / size, 2) if size else None


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/scale-data", help="folder for the synthetic stores (kept)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="pool sizes")
    parser.add_argument("--dim", type=int, default=8192, help="projection dimension")
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS, help="operations to measure")
    parser.add_argument("--baseline", default=None, help="a checkout of older code to also run at the 10^5 size")
    parser.add_argument("--baseline-min-free-gb", type=float, default=21.0,
                        help="run the baseline only when this much memory is available (it loads whole tables)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds allowed per operation")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/torch threads per operation (scoring is memory-bound; on a shared 2-core machine "
                             "one thread ran faster than two)")
    parser.add_argument("--out", default=None, help="folder for scale.json and scale.md (default benchmarks/results)")
    parser.add_argument("--report-only", action="store_true", help="rewrite scale.md from scale.json in --out")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = Path(args.data)
    if args.child:
        print(json.dumps(run_op(args.child, data, args.sizes[0], args.dim)))
        return 0
    # not imported by a child, which may run another checkout's code (--baseline)
    from benchmarks.envelope import RESULTS, command_line, load_average, write_markdown, write_results

    out = Path(args.out) if args.out else RESULTS
    if args.report_only:
        saved = json.loads((out / "scale.json").read_text(encoding="utf-8"))
        write_markdown(out / "scale.md", report(saved["rows"], saved["meta"]))
        return 0
    data.mkdir(parents=True, exist_ok=True)
    stored = {}
    for n in args.sizes:
        for kind in ("a", "b"):
            t = time.perf_counter()
            path, reused = write_store(data, kind, n, args.dim)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            stored[f"{kind}-{n}"] = {"path": str(path), "gb": round(size / 2**30, 2),
                                     **({"reused": True} if reused else {"write_s": round(time.perf_counter() - t, 1)})}
            print(f"store {kind}-{n}: {stored[f'{kind}-{n}']}", flush=True)
    if "policy" in args.ops:
        train_policy(data, args.dim)
    rows = []
    load_before = load_average()
    for n in args.sizes:
        for op in args.ops:
            row = child(op, data, n, args.dim, None, args.timeout, args.threads)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.baseline and n == 100_000:
            for op in BASELINE_OPS:
                free = mem_available_gb()
                if free < args.baseline_min_free_gb:
                    row = {"n": n, "op": op, "seconds": None, "peak_rss_gb": None,
                           "error": f"skipped: {free:.1f} GB available, under {args.baseline_min_free_gb} GB"}
                else:
                    row = child(op, data, n, args.dim, Path(args.baseline), args.timeout, args.threads)
                row["code"] = f"baseline {args.baseline}"
                rows.append(row)
                print(json.dumps(row), flush=True)
    cost = fp16_cost(args.dim)
    meta = {"command": command_line(__file__, argv), "python": platform.python_version(), "cpus": os.cpu_count(),
            "threads": args.threads, "load_average_before": load_before, "load_average": load_average(),
            "stores": stored, "fp16": cost, "goal": {"seconds": GOAL_SECONDS, "peak_rss_gb": GOAL_RSS_GB}}
    write_results(out / "scale", {"rows": rows, "meta": meta}, report(rows, meta))
    return 0


def report(rows: list[dict], meta: dict) -> str:
    """The Markdown table of a run, with what each figure means."""
    lines = ["# Selection at scale: time and peak memory", "", f"Command: `{meta['command']}`", "",
             "| n | op | code | seconds | CPU seconds | peak RSS (GB) | goal met | notes |",
             "|---:|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        ok = (r["seconds"] is not None and r["seconds"] <= GOAL_SECONDS and r["peak_rss_gb"] <= GOAL_RSS_GB)
        notes = r.get("error") or ", ".join(f"{k} {v}" for k, v in r.items()
                                            if k not in ("n", "op", "seconds", "peak_rss_gb", "code", "cpu_seconds"))
        lines.append(f"| {r['n']:,} | {r['op']} | {r.get('code', 'this branch')} | "
                     f"{'-' if r['seconds'] is None else r['seconds']} | {r.get('cpu_seconds', '-')} | "
                     f"{'-' if r['peak_rss_gb'] is None else r['peak_rss_gb']} | "
                     f"{'yes' if ok else 'no'} | {notes} |")
    ours = {(r["n"], r["op"]): r for r in rows if "code" not in r and r["seconds"] is not None}
    for r in rows:
        mine = ours.get((r["n"], r["op"]))
        if "code" in r and r["seconds"] is not None and mine:
            lines += ["", f"`{r['op']}` at n = {r['n']:,}, {r['code']} against this branch in the same run: "
                          f"{r['seconds'] / mine['seconds']:.1f}x the time ({r['seconds']} s vs {mine['seconds']} s) "
                          f"and {r['peak_rss_gb'] / mine['peak_rss_gb']:.0f}x the peak memory "
                          f"({r['peak_rss_gb']} GB vs {mine['peak_rss_gb']} GB)."]
    cost, dim = meta["fp16"], meta["fp16"]["dim"]
    lines += ["", "Operations (each in a fresh process; seconds from opening the store to the result, imports "
              "excluded): `open` = the train and validation tables; `less`, `nice` = the selector at 5%; "
              "`gradalign_sim` = GradAlign `mode=sim` at 5% in rounds (chunks of n/100, q = 4, 20 rounds); "
              "`feature_select` = `selectgym/FeatureSelect-v0` with 64 clusters over the store (reward `none`, "
              "alignment from `grad_adam`) and a reset; `policy` = a saved PPO policy (trained for 2,048 steps on a "
              "4,096-row pool with the same env settings, batch 64: it is there to be applied, not to be good) "
              "applied at 5%.",
              "", f"Stores: {json.dumps(meta['stores'])}", "",
              f"float16 storage of projected gradients (d = {dim}, {cost['rows']} rows): cosine with the float32 "
              f"row min {cost['cosine_min']:.8f}, mean {cost['cosine_mean']:.8f}; LESS scores differ by at most "
              f"{cost['less_score_max_abs_diff']:.2e}; the top 5% overlap {100 * cost['less_top5pct_overlap']:.1f}%.",
              "", f"Machine: {meta['cpus']} cores, Python {meta['python']}, {meta['threads']} thread(s) per operation; "
              f"load average (1/5/15 min) before the operations {meta['load_average_before']}, after "
              f"{meta['load_average']}. The machine is shared with other jobs: wall seconds include waiting for a "
              "core, CPU seconds do not. GB are GiB (2^30 bytes); peak RSS is VmHWM, so it counts the pages of "
              "mapped files a process touched. cached_before: the share of the store's bytes already in the OS page "
              "cache when the operation began (fincore); what is not cached is read from disk."]
    if meta.get("notes"):
        lines += ["", *meta["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
