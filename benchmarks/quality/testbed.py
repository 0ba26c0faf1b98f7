"""Does the proxy know the task world? The ``mini`` proxy measured on the built-in suite, SmolLM2 beside it.

Run: ``.venv/bin/python -m benchmarks.quality.testbed`` from the checkout root (builds ``mini`` into
``$SELECTGYM_CACHE`` on first use unless the shipped one is there).
On the suite drawn with ``--seed``/``--size``/``--validation-size``:

- ``loss_auc``: ROC-AUC of the proxy's response loss (token-mean NLL, ``selectgym.proxies.warmup.sft_losses``)
  as a detector of content defects (wrong answer, truncated, garbled) among on-target examples; duplicates
  are left out (redundancy is not a loss matter). ``loss_auc_smollm2`` is the same with SmolLM2.
- ``pass_rate`` / ``mixed_reward_share``: ``--k`` answers per target validation problem sampled at
  ``--temperature`` (``TransformersGenerator``), scored by the suite's verifier (``VerifierReward``): the
  mean reward, and the share of problems whose answers got differing rewards.
- ``cost_ratio``: SmolLM2's seconds per example over the proxy's for per-example LoRA gradients
  (``sft_grads``: one batched forward+backward, LoRA r=8 on all linear layers), same examples, fastest of
  ``--repeats`` alternating runs.
- ``build_seconds``: the proxy's build time, from its ``build.json``.

The suite's small problems (one digit, two terms) are few, so the proxy's pretraining corpus holds many of
them verbatim; the AUC and the pass rate are also reported on the examples and problems it never saw.

Ground-truth labels (``meta.defect``, ``meta.on_target``) are read here for measuring only. Results are
merged into ``--out``.json (keys other benchmarks wrote there are kept) and written as ``--out``.md, whose
``## Target sensitivity`` section (``benchmarks.accuracy.sensitivity``) is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from benchmarks.envelope import command_line, environment, load_average, load_note, section_of, write_results
from selectgym.data import load_pool
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.proxies.gradients import sft_grads
from selectgym.proxies.lora import LoraSpec, attach_lora, lora_parameters
from selectgym.proxies.mini import MiniConfig, corpus
from selectgym.proxies.models import load_model, weights_digest
from selectgym.proxies.rewards import VerifierReward
from selectgym.proxies.rollouts import TransformersGenerator
from selectgym.proxies.warmup import sft_losses

CONTENT_DEFECTS = ("wrong_answer", "truncated", "garbled")
GOALS = {"loss_auc": ">= 0.8", "pass_rate": "in [0.1, 0.9]", "mixed_reward_share": ">= 0.3", "cost_ratio": ">= 10",
         "build_seconds": "<= 600"}


def met(key: str, value: float) -> bool:
    if key == "pass_rate":
        return 0.1 <= value <= 0.9
    if key == "build_seconds":
        return value <= 600
    return value >= {"loss_auc": 0.8, "mixed_reward_share": 0.3, "cost_ratio": 10.0}[key]


def suite(args, folder: Path):
    make_suite(folder, SuiteConfig(seed=args.seed, size=args.size, validation_size=args.validation_size))
    return load_pool(folder / "sft.jsonl"), load_pool(folder / "validation.jsonl", "verifiable")


def loss_detection(model, tok, pool, max_length: int, seen: set[str] | None = None) -> dict:
    """AUC of the response loss for content defects vs clean, on-target examples only, overall and per kind;
    with ``seen`` (questions of the proxy's pretraining corpus) also on the examples whose question it never saw."""
    rows = [ex for ex in pool if ex.meta["on_target"] and ex.meta["defect"] in ("none", *CONTENT_DEFECTS)]
    losses = sft_losses(model, tok, rows, batch_size=8, max_length=max_length)
    kinds = np.array([ex.meta["defect"] for ex in rows])
    out = {"n_clean": int((kinds == "none").sum()), "n_defective": int((kinds != "none").sum()),
           "auc": float(roc_auc_score(kinds != "none", losses)), "auc_by_defect": {}, "mean_loss": {}}
    if seen is not None:
        new = np.array([ex.prompt[-1]["content"] not in seen for ex in rows])
        out["n_unseen"] = int(new.sum())
        out["auc_unseen"] = float(roc_auc_score(kinds[new] != "none", losses[new]))
    for kind in ("none", *CONTENT_DEFECTS):
        out["mean_loss"][kind] = float(losses[kinds == kind].mean())
        if kind != "none":
            keep = (kinds == "none") | (kinds == kind)
            out["auc_by_defect"][kind] = float(roc_auc_score(kinds[keep] == kind, losses[keep]))
    return out


def rollout_rewards(model, tok, val, k: int, temperature: float, max_new_tokens: int, seed: int,
                    seen: set[str] | None = None) -> dict:
    """Mean verifier reward of ``k`` sampled answers per problem, the mixed-reward share, and greedy accuracy;
    with ``seen``, the pass rate split by whether the problem's question is in the pretraining corpus."""
    examples = list(val)
    gen = TransformersGenerator(model, tok, batch_size=64)
    prompts = [ex.prompt for ex in examples]
    sampled = gen.generate(prompts, n=k, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    reward = VerifierReward()
    r = reward([ex for ex in examples for _ in range(k)], [c for cs in sampled for c in cs]).reshape(len(examples), k)
    greedy = gen.generate(prompts, n=1, max_new_tokens=max_new_tokens, temperature=0.0)
    g = reward(examples, [c[0] for c in greedy])
    tasks = sorted({ex.meta["task"] for ex in examples})
    by_task = {t: float(r[[ex.meta["task"] == t for ex in examples]].mean()) for t in tasks}
    split = {}
    if seen is not None:
        known = np.array([ex.prompt[-1]["content"] in seen for ex in examples])
        split = {"seen_in_corpus": float(known.mean()), "pass_rate_seen": float(r[known].mean()),
                 "pass_rate_unseen": float(r[~known].mean()),
                 "mixed_reward_share_unseen": float((r[~known].max(1) != r[~known].min(1)).mean())}
    return {"n_problems": len(examples), "k": k, "temperature": temperature, "pass_rate": float(r.mean()),
            "mixed_reward_share": float((r.max(1) != r.min(1)).mean()), "pass_rate_by_task": by_task,
            "greedy_accuracy": float(g.mean()), **split,
            "examples": [{"prompt": ex.prompt[-1]["content"], "answer": ex.answer, "sampled": cs}
                         for ex, cs in zip(examples[:3], sampled[:3], strict=True)]}


def lora_proxy(model, seed: int):
    """LoRA r=8 on all linear layers, adapter weights small seeded values (so both A and B get gradients)."""
    model = attach_lora(model, LoraSpec(r=8, alpha=16))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def seconds_per_example(model, tok, examples, batch_size: int, max_length: int) -> float:
    started = time.perf_counter()
    sft_grads(model, tok, examples, batch_size=batch_size, max_length=max_length)
    return (time.perf_counter() - started) / len(examples)


def markdown(report: dict) -> str:
    lines = ["# Testbed: does the proxy know the task world?", "",
             f"Command: `{report['command']}`", "",
             f"{report['environment']}. {report['load_note']}", "",
             f"Proxy `{report['proxy']}` (weights digest {report.get('proxy_digest')}): "
             f"{report['proxy_parameters']:,} parameters, built in "
             f"{report['build_seconds']:.0f} s ({report['build_threads']} thread(s)). "
             f"Suite: seed {report['suite']['seed']}, "
             f"{report['suite']['size']} pool examples, {report['suite']['validation_size']} target validation "
             f"problems. Ground-truth labels are used for measuring only.", "",
             "| measure | proxy | SmolLM2-135M | goal | met |", "|---|---:|---:|---|---|"]
    d, s = report["detection"], report.get("detection_smollm2")
    sm = (lambda x: f"{x:.3f}") if s else (lambda x: "-")
    lines.append(f"| `loss_auc` (content defects, on-target) | {report['loss_auc']:.3f} | "
                 f"{sm(s['auc']) if s else '-'} | >= 0.8 | {'yes' if met('loss_auc', report['loss_auc']) else 'no'} |")
    if "auc_unseen" in d:
        lines.append(f"| AUC, examples whose question is not in the pretraining corpus (n={d['n_unseen']}) | "
                     f"{d['auc_unseen']:.3f} | | | |")
    for kind in CONTENT_DEFECTS:
        lines.append(f"| AUC, {kind} only | {d['auc_by_defect'][kind]:.3f} | "
                     f"{sm(s['auc_by_defect'][kind]) if s else '-'} | | |")
    def losses(det: dict | None) -> str:
        return " / ".join(f"{det['mean_loss'][k]:.2f}" for k in ("none", *CONTENT_DEFECTS)) if det else "-"

    lines.append(f"| mean loss clean / wrong / truncated / garbled | {losses(d)} | {losses(s)} | | |")
    ro = report["rollouts"]
    ok = "yes" if met("pass_rate", report["pass_rate"]) else "no"
    lines += [f"| `pass_rate` ({ro['k']} samples at T={ro['temperature']:g}, {ro['n_problems']} problems) | "
              f"{report['pass_rate']:.3f} | | [0.1, 0.9] | {ok} |",
              f"| pass rate by task | {', '.join(f'{t} {v:.2f}' for t, v in ro['pass_rate_by_task'].items())} | | | |",
              f"| greedy accuracy | {ro['greedy_accuracy']:.3f} | | | |",
              *([f"| pass rate on problems seen / not seen in pretraining ({ro['seen_in_corpus']:.0%} seen) | "
                 f"{ro['pass_rate_seen']:.3f} / {ro['pass_rate_unseen']:.3f} | | | |",
                 f"| mixed-reward share on problems not seen in pretraining | {ro['mixed_reward_share_unseen']:.3f} "
                 f"| | | |"] if "seen_in_corpus" in ro else []),
              f"| `mixed_reward_share` | {report['mixed_reward_share']:.3f} | | >= 0.3 | "
              f"{'yes' if met('mixed_reward_share', report['mixed_reward_share']) else 'no'} |"]
    c = report.get("cost")
    if c:
        lines += [f"| seconds per example, LoRA per-example gradients (N={c['n']}) | {c['proxy']:.4f} | "
                  f"{c['smollm2']:.4f} | | |",
                  f"| `cost_ratio` (SmolLM2 / proxy) | {report['cost_ratio']:.1f} | | >= 10 | "
                  f"{'yes' if met('cost_ratio', report['cost_ratio']) else 'no'} |"]
    lines += [f"| `build_seconds` | {report['build_seconds']:.0f} | | <= 600 | "
              f"{'yes' if met('build_seconds', report['build_seconds']) else 'no'} |", "",
              "The proxy is built by `selectgym model pretrain` (default settings; `load_model(\"mini\")` builds "
              "the same on first use). Response loss: token-mean NLL of the reply and its end-of-sequence token "
              "(`sft_losses`, the `loss` feature without warm-up). Cost: `sft_grads` (the `grad` feature's forward and "
              "backward, no projection), LoRA r=8 on all linear layers, batches of 8, the same on-target examples for "
              "both models.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="mini", help="proxy model: mini or a local folder")
    parser.add_argument("--seed", type=int, default=0, help="suite seed (and sampling seed)")
    parser.add_argument("--size", type=int, default=800, help="suite pool size")
    parser.add_argument("--validation-size", type=int, default=200, help="target validation problems")
    parser.add_argument("--k", type=int, default=4, help="sampled answers per validation problem")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens per sampled answer")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example for losses and gradients")
    parser.add_argument("--cost-n", type=int, default=32, help="examples timed for the cost ratio")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timing runs per model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every measurement")
    parser.add_argument("--no-smollm2", dest="smollm2", action="store_false",
                        help="skip SmolLM2 (no loss_auc_smollm2, no cost_ratio)")
    parser.add_argument("--out", default="benchmarks/results/testbed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    before = load_average()
    started = time.perf_counter()
    model, tok = load_model(args.proxy)
    folder = args.proxy if Path(args.proxy).exists() else None
    if folder is None:
        from selectgym.proxies.mini import mini_dir

        folder = mini_dir()
    build = json.loads((Path(folder) / "build.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        pool, val = suite(args, Path(tmp))
    config = MiniConfig(**build["config"])
    seen = {q for q, _ in corpus(config, config.steps * config.batch_size)}
    report = {
        "command": command_line(__file__, argv),
        "environment": environment(),
        "proxy": args.proxy, "proxy_parameters": sum(p.numel() for p in model.parameters()),
        "proxy_digest": weights_digest(args.proxy),
        "build_seconds": build["seconds"]["total"], "build_threads": build["seconds"].get("threads"),
        "suite": {"seed": args.seed, "size": args.size, "validation_size": args.validation_size}, "goals": GOALS,
    }
    print("loss detection (proxy)", flush=True)
    report["detection"] = loss_detection(model, tok, pool, args.max_length, seen)
    report["loss_auc"] = report["detection"]["auc"]
    print(f"  loss_auc {report['loss_auc']:.3f}; rollouts", flush=True)
    report["rollouts"] = rollout_rewards(model, tok, val, args.k, args.temperature, args.max_new_tokens, args.seed,
                                         seen)
    report["pass_rate"] = report["rollouts"]["pass_rate"]
    report["mixed_reward_share"] = report["rollouts"]["mixed_reward_share"]
    print(f"  pass_rate {report['pass_rate']:.3f}, mixed {report['mixed_reward_share']:.3f}", flush=True)
    if args.smollm2:
        smol, smol_tok = load_model("smollm2")
        print("loss detection (SmolLM2)", flush=True)
        report["detection_smollm2"] = loss_detection(smol, smol_tok, pool, args.max_length)
        report["loss_auc_smollm2"] = report["detection_smollm2"]["auc"]
        print(f"  loss_auc_smollm2 {report['loss_auc_smollm2']:.3f}; timing", flush=True)
        timed = [ex for ex in pool if ex.meta["on_target"]][:args.cost_n]
        proxies = {"proxy": (lora_proxy(model, args.seed), tok), "smollm2": (lora_proxy(smol, args.seed), smol_tok)}
        best = {name: float("inf") for name in proxies}
        for _ in range(args.repeats):
            for name, (m, t) in proxies.items():
                best[name] = min(best[name], seconds_per_example(m, t, timed, 8, args.max_length))
        report["cost"] = {"n": len(timed), **best}
        report["cost_ratio"] = best["smollm2"] / best["proxy"]
        print(f"  cost_ratio {report['cost_ratio']:.1f}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["loadavg_before"], report["loadavg_after"] = before, load_average()
    report["load_note"] = load_note(before, report["loadavg_after"])
    out = Path(args.out)
    text = markdown(report) + section_of(out.with_suffix(".md"), "## Target sensitivity")
    write_results(out, report, text, merge=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
