"""``selectgym features``: flags and YAML reach FeatureConfig, a killed run resumes, torchrun shares the shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from selectgym.cli import main
from selectgym.data.io import load_pool, save_pool
from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features
from selectgym.proxies.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--proj-dim", "256", "--max-length", "64", "--batch-size", "4", "--shard-size", "4", "--warmup-steps", "2",
         "--warmup-fraction", "0.5", "--seed", "0"]
CONFIG = FeatureConfig(model="tiny", proj_dim=256, max_length=64, batch_size=4, shard_size=4, warmup_steps=2,
                       warmup_fraction=0.5, seed=0, features=["grad", "loss", "length"])


@pytest.fixture(scope="module")
def pools(suite_dir, tmp_path_factory):
    """A 24-example SFT pool (6 shards of 4) and a 4-problem validation set."""
    out = tmp_path_factory.mktemp("pools")
    save_pool(out / "sft.jsonl", load_pool(suite_dir / "sft.jsonl")[:24])
    save_pool(out / "validation.jsonl", load_pool(suite_dir / "validation.jsonl")[:4])
    return out


@pytest.fixture(scope="module")
def clean(pools, tmp_path_factory):
    """The uninterrupted single-process run every other run is compared with."""
    out = tmp_path_factory.mktemp("clean")
    return compute_features(pools / "sft.jsonl", pools / "validation.jsonl", CONFIG, out, progress=False)


def _assert_same_tables(got: FeatureStore, want: FeatureStore, rtol: float = 1e-5) -> None:
    for name in ("train", "val"):
        a, b = got.table(name), want.table(name)
        assert a.ids == b.ids and set(a.arrays) == set(b.arrays)
        for key in b.arrays:
            np.testing.assert_allclose(a.get(key), b.get(key), rtol=rtol, atol=1e-5 * np.abs(b.get(key)).max())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def test_cli_computes_then_reuses(pools, clean, tmp_path, capsys):
    argv = ["features", "--config", str(ROOT / "configs" / "features_tiny.yaml"), "--pool", str(pools / "sft.jsonl"),
            "--val", str(pools / "validation.jsonl"), "--out", str(tmp_path), "--features", "grad,loss", "length",
            "--no-progress", *FLAGS]
    assert main(argv) == 0
    out = capsys.readouterr().out
    store = FeatureStore.open(tmp_path)
    assert store.key == clean.key  # YAML + flags give CONFIG
    assert f"features of 24 examples and 4 validation in {store.path}" in out
    assert "train arrays: grad[256], length[], loss[]" in out
    assert "computed 28 examples in" in out and "examples/s" in out
    assert store.meta["config"]["lora_r"] == 8 and store.meta["config"]["projection"] == "sjlt"  # from the YAML
    _assert_same_tables(store, clean)
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--features", "grad,gradz"], "unknown feature(s) gradz"),
    (["--features", "dpo_gap"], "dpo_gap needs a preference pool"),
    (["--pool", ""], "--pool FILE is required"),
    (["--projection", "gauss"], "projection 'gauss' is unknown"),
])
def test_user_errors_are_one_line(pools, tmp_path, capsys, argv, message):
    base = ["features", "--pool", str(pools / "sft.jsonl"), "--out", str(tmp_path), "--no-progress"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.slow
def test_killed_run_resumes(pools, clean, tmp_path):
    """SIGKILL after the first shard lands; the rerun keeps finished shards untouched and equals a clean run."""
    cmd = [sys.executable, "-m", "selectgym.cli", "features", "--pool", str(pools / "sft.jsonl"), "--val",
           str(pools / "validation.jsonl"), "--out", str(tmp_path), "--features", "grad,loss,length",
           "--no-progress", *FLAGS]
    logfile = tmp_path.with_name(tmp_path.name + "-first-run.log")  # beside --out: a user's file in it is refused
    log = logfile.open("w")
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    shards = tmp_path / clean.key / "train"
    deadline = time.monotonic() + 240
    while not list(shards.glob("shard-*.safetensors")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL, logfile.read_text()[-2000:]
    store = FeatureStore.open(tmp_path / clean.key)
    assert not store.complete
    done = store.finished_shards("train")
    assert 1 <= len(done) < 6
    before = {i: (p.read_bytes(), os.stat(p).st_mtime_ns) for i in done
              if (p := shards / f"shard-{i:05d}.safetensors")}
    for i in done:
        store.read_shard("train", i)  # every file under a final name is whole

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(done) * 4} came from finished shards" in rerun.stdout
    assert {i: (p.read_bytes(), os.stat(p).st_mtime_ns) for i in done
            if (p := shards / f"shard-{i:05d}.safetensors")} == before
    _assert_same_tables(FeatureStore.open(tmp_path), clean)


@pytest.mark.slow
def test_torchrun_two_processes_share_the_shards(pools, clean, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "selectgym.cli", "-v", "features", "--pool", str(pools / "sft.jsonl"),
           "--val", str(pools / "validation.jsonl"), "--out", str(tmp_path), "--features", "grad,loss,length",
           "--no-progress", *FLAGS]
    run = subprocess.run(cmd, env={**_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rank 0 of 2: computing train shards [0, 2, 4]" in run.stderr
    assert "rank 1 of 2: computing train shards [1, 3, 5]" in run.stderr
    assert run.stdout.count("features of 24 examples") == 1  # only rank 0 reports
    store = FeatureStore.open(tmp_path)
    assert store.complete and store.key == clean.key
    _assert_same_tables(store, clean, rtol=1e-4)
    train, val, _ = load_features(tmp_path)
    assert len(train) == 24 and len(val) == 4
