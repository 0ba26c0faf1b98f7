"""Speed of projected per-example LoRA gradients: the LESS/DataFlex way against ours, and the batched floor.

Run: ``.venv/bin/python -m benchmarks.speed.features_speed`` from the checkout root (``--models tiny --n 32`` for
a short run). For each model,
on the same examples of the built-in suite and in one run:

(a) LESS/DataFlex: one forward+backward per example (batch 1), dense Rademacher projection to ``--dim`` applied
    to groups of 16 gradients (as TRAK's projector does);
(b) ours: ``sft_grads`` (one batched backward per ``--batch-size`` examples, closed-form per-example
    gradients) with an SJLT projection to ``--dim``;
(c) floor: one plain batched forward+backward of the summed losses (same batches, same loss code), no
    per-example work.

Each method runs ``--repeats`` (SmolLM2: ``--repeats-smollm2``) times in alternating order and the fastest run
counts (other jobs share the CPU).
Quality: max |cos(P g_i, P g_j) - cos(g_i, g_j)| over pairs, against the exact (unprojected) gradients; the
exact batched gradients are also compared with the loop's. Writes ``--out``.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.envelope import command_line, environment, load_average, load_note, write_results
from selectgym.data import load_pool
from selectgym.data.render import collate, render_example
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.proxies.gradients import grad_dim, length_batches, loop_per_example_grads, sequence_losses, sft_grads
from selectgym.proxies.lora import LoraSpec, attach_lora, lora_parameters
from selectgym.proxies.models import load_model
from selectgym.proxies.projection import RademacherProjector, SJLTProjector

LESS_GROUP = 16
TARGETS = {"ours_vs_less": 5.0, "floor_vs_ours": 1.3, "cosine_error": 0.05}


def lora_model(name: str, seed: int):
    """The model with LoRA r=8 on all linear layers, adapter weights set to small seeded values (a "trained"
    adapter: with lora_B = 0, as freshly initialised, lora_A would get no gradient)."""
    model, tok = load_model(name)
    model = attach_lora(model, LoraSpec(r=8, alpha=16))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval(), tok


def less_way(model, tok, examples, max_length: int, projector: RademacherProjector) -> tuple[np.ndarray, np.ndarray]:
    """Batch-1 gradients, projected densely 16 at a time; returns (projected, exact) rows."""
    exact, projected, pending = [], [], []
    for ex in examples:
        batch = collate([render_example(tok, ex, max_length=max_length)], tok.pad_token_id)
        pending.append(loop_per_example_grads(model, batch)[0])
        if len(pending) == LESS_GROUP:
            stacked = torch.stack(pending)
            projected.append(projector.project(stacked))
            exact.append(stacked)
            pending = []
    if pending:
        stacked = torch.stack(pending)
        projected.append(projector.project(stacked))
        exact.append(stacked)
    return torch.cat(projected).numpy(), torch.cat(exact).numpy()


def floor(model, tok, examples, max_length: int, batch_size: int) -> None:
    """What one batched SFT step's gradient costs: forward, summed loss, backward to the LoRA weights."""
    params = [p for _, p in lora_parameters(model)]
    rendered = [render_example(tok, ex, max_length=max_length) for ex in examples]
    for rows in length_batches([len(r.input_ids) for r in rendered], batch_size):
        batch = collate([rendered[i] for i in rows], tok.pad_token_id)
        with torch.enable_grad():
            torch.autograd.grad(sequence_losses(model, batch).sum(), params)


def plain_loop(model, tok, examples, max_length: int) -> None:
    """Attribution only: batch-1 backward with our loss path (LM head on response positions), no projection."""
    params = [p for _, p in lora_parameters(model)]
    for ex in examples:
        batch = collate([render_example(tok, ex, max_length=max_length)], tok.pad_token_id)
        with torch.enable_grad():
            torch.cat([g.flatten() for g in torch.autograd.grad(sequence_losses(model, batch)[0], params)])


def max_cosine_error(approx: np.ndarray, exact: np.ndarray) -> float:
    def cos(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    return float(np.abs(cos(approx.astype(np.float64)) - cos(exact.astype(np.float64))).max())


def bench_model(name: str, n: int, args) -> dict:
    model, tok = lora_model(name, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        make_suite(tmp, SuiteConfig(seed=args.seed, size=max(n, 8), validation_size=1))
        examples = list(load_pool(Path(tmp) / "sft.jsonl"))[:n]
    dim_in = grad_dim(model)
    sjlt = SJLTProjector(dim_in, args.dim, seed=args.seed)
    dense = RademacherProjector(dim_in, args.dim, seed=args.seed)
    tokens = [len(render_example(tok, ex, max_length=args.max_length).input_ids) for ex in examples]
    sft_grads(model, tok, examples[:args.batch_size], projector=sjlt, batch_size=args.batch_size,
              max_length=args.max_length)  # warm-up

    runs = {
        "less": lambda: less_way(model, tok, examples, args.max_length, dense),
        "ours": lambda: sft_grads(model, tok, examples, projector=sjlt, batch_size=args.batch_size,
                                  max_length=args.max_length),
        "floor": lambda: floor(model, tok, examples, args.max_length, args.batch_size),
        "loop_our_loss": lambda: plain_loop(model, tok, examples, args.max_length),
    }
    seconds = {k: float("inf") for k in runs}
    results = {}
    repeats = args.repeats_smollm2 if name == "smollm2" else args.repeats
    for rep in range(repeats):
        for key in (runs if rep % 2 == 0 else reversed(list(runs))):
            start = time.perf_counter()
            results[key] = runs[key]()
            seconds[key] = min(seconds[key], time.perf_counter() - start)
            print(f"  {name} repeat {rep} {key}: {time.perf_counter() - start:.2f} s", flush=True)

    less_projected, loop_exact = results["less"]
    ours_exact = sft_grads(model, tok, examples, batch_size=args.batch_size, max_length=args.max_length)
    rel = np.linalg.norm(ours_exact - loop_exact, axis=1) / np.linalg.norm(loop_exact, axis=1)
    rate = {k: n / s for k, s in seconds.items()}
    return {
        "model": name, "n": n, "grad_dim": dim_in, "proj_dim": args.dim, "batch_size": args.batch_size,
        "mean_tokens": float(np.mean(tokens)), "max_tokens": int(max(tokens)),
        "seconds": seconds, "examples_per_s": rate,
        "ours_vs_less": rate["ours"] / rate["less"], "floor_vs_ours": rate["floor"] / rate["ours"],
        "cosine_error_ours_sjlt": max_cosine_error(results["ours"], ours_exact),
        "cosine_error_less_rademacher": max_cosine_error(less_projected, loop_exact),
        "batched_vs_loop_max_rel_error": float(rel.max()), "repeats": repeats,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Per-example gradient features: speed", "",
        f"Command: `{report['command']}`", "",
        f"{report['environment']}. {load_note(report['loadavg_before'], report['loadavg_after'])} "
        "Each figure is the fastest of the model's alternating runs (tiny: "
        f"{report['repeats']}, SmolLM2: {report['repeats_smollm2']}).", "",
        "(a) LESS/DataFlex: batch-1 backward per example + dense Rademacher projection of groups of 16; "
        "(b) ours: batched closed-form per-example gradients (`sft_grads`) + SJLT; "
        "(c) floor: one plain batched forward+backward, no per-example work. "
        f"Projection to {report['dim']} dims; LoRA r=8 on all 7 linear layers. (b) and (c) share a loss that "
        "runs the LM head only where a response token is predicted; (a) computes all logits, as LESS does. "
        "The last column separates that effect: a batch-1 loop with our loss and no projection.", "",
        "| model | N | grad dim | tokens (mean/max) | (a) LESS ex/s | (b) ours ex/s | (c) floor ex/s "
        "| (b)/(a) | (c)/(b) | cos err ours (SJLT) | cos err LESS (Rademacher) | batched vs loop rel err "
        "| batch-1 loop, our loss, no proj. ex/s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["models"]:
        e = r["examples_per_s"]
        lines.append(
            f"| {r['model']} | {r['n']} | {r['grad_dim']:,} | {r['mean_tokens']:.0f}/{r['max_tokens']} "
            f"| {e['less']:.3g} | {e['ours']:.3g} | {e['floor']:.3g} | {r['ours_vs_less']:.1f}x "
            f"| {r['floor_vs_ours']:.2f}x | {r['cosine_error_ours_sjlt']:.3f} "
            f"| {r['cosine_error_less_rademacher']:.3f} | {r['batched_vs_loop_max_rel_error']:.1e} "
            f"| {e['loop_our_loss']:.3g} |")
    t = report["targets"]
    lines += ["", f"Targets: (b)/(a) >= {t['ours_vs_less']}, (c)/(b) <= {t['floor_vs_ours']}, "
                  f"cosine error <= {t['cosine_error']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--n", type=int, default=64, help="examples for the tiny model")
    parser.add_argument("--n-smollm2", type=int, default=8, help="examples for SmolLM2 (dense projection is slow)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--dim", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per method (tiny)")
    parser.add_argument("--repeats-smollm2", type=int, default=1, help="alternating runs per method (SmolLM2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/features_speed")
    args = parser.parse_args(argv)

    report = {
        "command": command_line(__file__, argv),
        "environment": environment(),
        "loadavg_before": load_average(),
        "dim": args.dim, "repeats": args.repeats,
        "repeats_smollm2": args.repeats_smollm2, "targets": TARGETS, "models": [],
    }
    out = Path(args.out)
    for name in args.models.split(","):
        n = args.n_smollm2 if name == "smollm2" else args.n
        print(f"{name}: N={n}", flush=True)
        report["models"].append(bench_model(name, n, args))
        report["loadavg_after"] = load_average()
        write_results(out, report, markdown(report))  # after each model, so a cut-short run keeps what it has
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
