"""Speed of the selection envs: raw steps/s per reward, env-steps/s inside PPO training, seconds per proxy step,
and seconds to apply an ExampleSelect policy to a large pool.

Run: ``.venv/bin/python -m benchmarks.speed.env_speed`` from the checkout root (``--quick`` for a short smoke run).
Writes benchmarks/results/env_speed.json and .md. Ratios compare against the ``none`` reward (the env's own cost)
measured in the same run; the PPO figure is checked against the 5,000 env-steps/s target.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from benchmarks.envelope import (
    RESULTS,
    command_line,
    load_average,
    load_note,
    replace_section,
    section_of,
    write_results,
)
from selectgym.agents import AgentConfig
from selectgym.agents.apply import FULL_PASSES, greedy_in_blocks
from selectgym.agents.policy_file import load_policy
from selectgym.agents.train import build_agent, make_vec_env, preserved_global_rngs, train_agent
from selectgym.envs import EXAMPLE_SELECT, FEATURE_SELECT
from selectgym.proxies.table import FeatureTable

log = logging.getLogger("env_speed")
PPO_TARGET = 5_000
#: env-steps/s the grounded reward must allow inside PPO training (the transfer issue's goal)
EXAMPLE_TARGET = 20


def pool_tables(n: int, grad_dim: int, emb_dim: int, seed: int = 0) -> tuple[FeatureTable, FeatureTable]:
    """Feature tables of a realistic shape (random values: speed does not depend on them)."""
    rng = np.random.default_rng(seed)
    train = FeatureTable([f"ex{i}" for i in range(n)], {
        "embedding": rng.normal(size=(n, emb_dim)).astype(np.float32),
        "grad": rng.normal(size=(n, grad_dim)).astype(np.float32),
        "loss": rng.uniform(0.5, 3, n), "length": rng.integers(5, 300, n).astype(np.float64),
        "pass_rate": rng.uniform(0, 1, n), "dpo_gap": rng.normal(size=n)})
    val = FeatureTable([f"v{j}" for j in range(64)], {"grad": rng.normal(size=(64, grad_dim)).astype(np.float32)})
    return train, val


def raw_steps_per_second(train, val, reward: str, seconds: float, env_id: str = FEATURE_SELECT,
                         reward_kwargs: dict | None = None) -> float:
    settings = {"n_clusters": 16, "batch_size": 8} if env_id == FEATURE_SELECT else {"chunk": 32}
    env = gym.make(env_id, table=train, val_table=val, budget=0.5, reward=reward, reward_kwargs=reward_kwargs,
                   **settings).unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        open_slots = np.flatnonzero(env.action_masks())
        if env.step(int(open_slots[rng.integers(len(open_slots))]))[2]:
            env.reset()
        steps += 1
    return steps / (time.perf_counter() - start)


def ppo_steps_per_second(train, val, timesteps: int, n_envs: int = 8, n_steps: int = 256,
                         **settings) -> tuple[float, float]:
    """(env-steps/s of ``learn``, seconds of set-up: K-means, the envs, the agent)."""
    cfg = AgentConfig(timesteps=timesteps, budget=0.05, n_clusters=16, batch_size=8, progress_bar=False,
                      eval_freq=0, n_envs=n_envs, n_steps=n_steps, **settings)
    start = time.perf_counter()
    with preserved_global_rngs():
        venv = make_vec_env(cfg, train, val, reward="linear", reward_kwargs=cfg.reward_kwargs, n_envs=cfg.n_envs,
                            training=True)
        model = build_agent(cfg, venv)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        model.learn(total_timesteps=timesteps)
    return timesteps / (time.perf_counter() - start), setup


def proxy_seconds_per_step(model: str, steps: int, suite: Path) -> tuple[float, float]:
    """(seconds per env step after warm-up, seconds to build the reward) with batch 8, 2 optimizer steps."""
    from selectgym.data.io import load_pool
    from selectgym.envs.rewards import ProxyReward

    pool, val_pool = load_pool(suite / "sft.jsonl"), load_pool(suite / "validation.jsonl")
    table = FeatureTable([ex.id for ex in pool], {})
    start = time.perf_counter()
    reward = ProxyReward(table, None, pool=pool, val_pool=val_pool, model=model, steps=2, val_subsample=16)
    build = time.perf_counter() - start
    rows = np.arange(len(pool))
    reward.step(rows[:8])
    start = time.perf_counter()
    for i in range(1, steps + 1):
        reward.step(rows[8 * i:8 * i + 8])
    return (time.perf_counter() - start) / steps, build


def apply_rows(sizes: Sequence[int], exact_up_to: int) -> list[dict]:
    """Seconds to apply an ExampleSelect policy at 5%: pick by pick (the whole pool rescored after every pick,
    N x B) against ``greedy_in_blocks``' default (at most FULL_PASSES whole-pool scorings), and their overlap."""
    train, val = pool_tables(n=800, grad_dim=512, emb_dim=384)
    cfg = AgentConfig(env_id=EXAMPLE_SELECT, timesteps=2_048, budget=0.05, chunk=32, n_envs=8, n_steps=64,
                      minibatch_size=256, progress_bar=False, eval_freq=0, reward_kwargs={"redundancy": 0.0})
    out = []
    with tempfile.TemporaryDirectory() as tmp, preserved_global_rngs():
        train_agent(cfg, train, val, out=Path(tmp) / "policy.zip")  # a scorer to apply, not a good one
        policy = load_policy(Path(tmp) / "policy.zip")
        for n in sizes:
            table, target = pool_tables(n=n, grad_dim=512, emb_dim=384, seed=1)
            picks = {}
            for name in ("blocks", "exact"):
                if name == "exact" and n > exact_up_to:
                    continue
                env = policy.make_env(table, target, 0.05)
                env.reset(seed=0)
                start = time.perf_counter()
                greedy_in_blocks(env, policy.model.policy.score, FULL_PASSES if name == "blocks" else env.budget)
                picks[name] = (time.perf_counter() - start, set(env.selected_rows().tolist()))
            row = {"n": n, "budget": len(picks["blocks"][1]), "blocks_s": picks["blocks"][0]}
            if "exact" in picks:
                row.update(exact_s=picks["exact"][0], speedup=picks["exact"][0] / picks["blocks"][0],
                           overlap=len(picks["exact"][1] & picks["blocks"][1]) / row["budget"])
            out.append(row)
            log.info("apply at n=%d: %s", n, row)
    return out


TERMINAL = "## Terminal rewards"


def trained_seconds_per_episode(episodes: int = 5) -> list[dict]:
    """The ``trained`` reward's cost with ``mini``, in the demo's setting: an episode of 30 picks from a 600-example
    pool, scored on 200 target problems (verifier accuracy of greedy answers, or the answers' loss)."""
    from selectgym.data.io import load_pool
    from selectgym.data.suite import SuiteConfig, make_suite
    from selectgym.data.targets import write_target_parts
    from selectgym.envs.rewards import make_reward

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        make_suite(tmp, SuiteConfig(seed=0, size=600, validation_size=600))
        parts = [Path(tmp) / f"part{i}.jsonl" for i in range(3)]
        write_target_parts(Path(tmp) / "validation.jsonl", *parts)
        pool, val_pool = load_pool(Path(tmp) / "sft.jsonl"), load_pool(parts[1])
        table = FeatureTable(list(pool.ids), {})
        rng = np.random.default_rng(0)
        # one training run, and the mean of several (repeats): the reward_fidelity benchmark's trained_x3 and
        # trained_loss_x4
        for score, repeats in (("accuracy", 1), ("loss", 1), ("accuracy", 3), ("loss", 4)):
            start = time.perf_counter()
            reward = make_reward("trained", table, None, pool=pool, val_pool=val_pool, model="mini", score=score,
                                 repeats=repeats)
            build = time.perf_counter() - start
            times = []
            for _ in range(episodes):
                rows = rng.choice(len(pool), 30, replace=False)
                start = time.perf_counter()
                reward.finish(rows)
                times.append(time.perf_counter() - start)
            runs = "" if repeats == 1 else f", mean of {repeats} training runs"
            out.append({"setup": f"trained reward, mini, 30 picks, 3 epochs (12 AdamW steps){runs}, {score} on 200 "
                                 f"target problems (median of {episodes} episodes)", "value": float(np.median(times)),
                        "unit": "s/episode", "build_s": build, "runs": times, "target": 2.0,
                        "meets_target": float(np.median(times)) <= 2.0})
    return out


def terminal_section(argv: list[str] | None, out: Path) -> int:
    """Measure the terminal rewards and write them as their own section of ``env_speed.{json,md}``."""
    before = load_average()
    rows = trained_seconds_per_episode()
    note = load_note(before, load_average())
    lines = [TERMINAL, "", f"Command: `{command_line(__file__, argv)}`. {note}", "",
             "A terminal reward is paid once, when the episode's budget is spent; its cost is per episode. The target "
             "for an affordable one is at most 2 s per episode with `mini`.", "",
             "| setup | s/episode | build s | meets <= 2 s |", "|---|---:|---:|---|"]
    lines += [f"| {r['setup']} | {r['value']:.2f} | {r['build_s']:.1f} | {'yes' if r['meets_target'] else 'no'} |"
              for r in rows]
    stem = out / "env_speed"
    write_results(stem, {"terminal": {"command": command_line(__file__, argv), "rows": rows, "load_note": note}},
                  replace_section(stem.with_suffix(".md"), TERMINAL, "\n".join(lines) + "\n"), merge=True)
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test, not a measurement)")
    parser.add_argument("--no-smollm2", action="store_true", help="skip the SmolLM2-135M proxy")
    parser.add_argument("--ppo-repeats", type=int, default=3, help="PPO runs; the table reports their median")
    parser.add_argument("--out", default=str(RESULTS), help="folder for env_speed.json/.md")
    parser.add_argument("--terminal", action="store_true",
                        help="measure only the terminal rewards and replace their section of the results")
    args = parser.parse_args(argv)
    if args.terminal:
        return terminal_section(argv, Path(args.out))
    load_before = load_average()
    seconds, ppo_steps, proxy_steps = (0.5, 2_048, 2) if args.quick else (5.0, 40_960, 5)
    train, val = pool_tables(n=800, grad_dim=512, emb_dim=384)
    rows = []
    base = raw_steps_per_second(train, val, "none", seconds)
    rows.append({"setup": "FeatureSelect-v0 env.step, reward none (baseline)", "value": base, "unit": "steps/s",
                 "ratio": 1.0})
    linear = raw_steps_per_second(train, val, "linear", seconds)
    rows.append({"setup": "FeatureSelect-v0 env.step, reward linear (d=512)", "value": linear, "unit": "steps/s",
                 "ratio": linear / base})
    # The default (8 envs x 256 steps) first, then the same 2,048-step rollout from more, shorter env copies:
    # one policy forward serves more env steps, the update is unchanged.
    for n_envs, n_steps in ((8, 256), (16, 128), (32, 64))[:1 if args.quick else 3]:
        runs = [ppo_steps_per_second(train, val, ppo_steps, n_envs, n_steps) for _ in range(args.ppo_repeats)]
        ppo_runs = [r[0] for r in runs]
        value = float(np.median(ppo_runs))
        row = {"setup": f"PPO learn(), {n_envs} DummyVecEnvs, n_steps {n_steps}, minibatch 512, 4 epochs, linear "
                        f"reward (median of {len(runs)}: {min(ppo_runs):.0f}-{max(ppo_runs):.0f})",
               "value": value, "unit": "env-steps/s", "ratio": value / base, "runs": ppo_runs, "setup_s": runs[0][1]}
        if n_envs == 8:  # the agent's default: the one the target is about
            ppo = value
            row.update(target=PPO_TARGET, meets_target=ppo >= PPO_TARGET)
        rows.append(row)
    # ExampleSelect: one example per step, so env-steps/s counts picks; the shipped policy's reward is linear
    # (against the held-out target half), the learned reward is the one fitted on real proxy updates.
    learned = {"weights": {"alignment_z": 1.0, "loss": -0.5}}
    for reward, kwargs in (("linear", {"redundancy": 0.0}), ("learned", learned)):
        value = raw_steps_per_second(train, val, reward, seconds, EXAMPLE_SELECT, kwargs)
        rows.append({"setup": f"ExampleSelect-v0 env.step, chunk 32, reward {reward}", "value": value,
                     "unit": "steps/s", "ratio": value / base})
    runs = [ppo_steps_per_second(train, val, ppo_steps // 4, 8, 64, env_id=EXAMPLE_SELECT, chunk=32,
                                 minibatch_size=256, reward_kwargs={"redundancy": 0.0})
            for _ in range(args.ppo_repeats)]
    value = float(np.median([r[0] for r in runs]))
    rows.append({"setup": f"PPO learn(), ExampleSelect-v0, 8 DummyVecEnvs, n_steps 64, candidate scorer, linear "
                          f"reward (median of {len(runs)})", "value": value, "unit": "env-steps/s",
                 "ratio": value / base, "target": EXAMPLE_TARGET, "meets_target": value >= EXAMPLE_TARGET})
    with tempfile.TemporaryDirectory() as tmp:
        from selectgym.data.suite import SuiteConfig, make_suite

        make_suite(tmp, SuiteConfig(seed=0, size=8 * (proxy_steps + 2), validation_size=16))
        for model in ("tiny", *(() if args.no_smollm2 else ("smollm2",))):
            per_step, build = proxy_seconds_per_step(model, proxy_steps, Path(tmp))
            rows.append({"setup": f"proxy reward, {model}, batch 8, 2 AdamW steps, val loss on 16", "value": per_step,
                         "unit": "s/step", "ratio": per_step * base, "build_s": build})
    applies = apply_rows((2_000, 10_000) if args.quick else (10_000, 40_000, 100_000),
                         exact_up_to=10_000 if args.quick else 100_000)
    header = f"{'setup':<92} {'value':>12} {'unit':<12} {'x baseline':>10}"
    print(header)
    for r in rows:
        print(f"{r['setup']:<92} {r['value']:>12.4g} {r['unit']:<12} {r['ratio']:>10.3g}")
    command = command_line(__file__, argv)
    meta = {"command": command, "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "quick": args.quick,
            "load_before": load_before, "load_after": load_average(),
            "note": "x baseline: steps/s over the none-reward env's steps/s; for s/step, how many baseline env "
                    "steps fit in one proxy step."}
    meta["note"] += " " + load_note(meta["load_before"], meta["load_after"])
    out = Path(args.out)
    lines = ["# Selection env speed", "", f"Command: `{command}`", "",
             f"Python {meta['python']}, torch {meta['torch']} ({meta['torch_threads']} threads), {meta['machine']}. "
             + meta["note"], "", "| setup | value | unit | x baseline |", "|---|---:|---|---:|"]
    lines += [f"| {r['setup']} | {r['value']:.4g} | {r['unit']} | {r['ratio']:.3g} |" for r in rows]
    lines += ["", "## Applying an ExampleSelect policy to a pool of N at 5%", "",
              f"`exact`: after every pick the whole pool is rescored (N x B scorings). `blocks`: the default, at most "
              f"{FULL_PASSES} whole-pool scorings, picks in blocks among each scoring's shortlist "
              "(`selectgym.agents.apply.greedy_in_blocks`; a budget of at most "
              f"{FULL_PASSES} is picked one by one, exactly). Same policy (PPO, 2,048 steps on an 800-row pool: "
              "there to be applied, not to be good), random features of the shapes above.", "",
              "| N | budget | exact s | blocks s | speed-up | same picks |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {a['n']:,} | {a['budget']:,} | {a['exact_s']:.2f} | {a['blocks_s']:.2f} | {a['speedup']:.1f}x | "
              f"{a['overlap']:.1%} |" if "exact_s" in a else
              f"| {a['n']:,} | {a['budget']:,} | not run | {a['blocks_s']:.2f} | | |" for a in applies]
    terminal = section_of(out / "env_speed.md", TERMINAL)  # measured by --terminal: kept
    write_results(out / "env_speed", {"meta": meta, "rows": rows, "apply": applies},
                  "\n".join(lines) + "\n" + terminal, merge=True)
    print(json.dumps({"ppo_meets_target": ppo >= PPO_TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
