"""Flag values a user gets wrong, through the CLI: exit 2 and one line that names the flag and a value that works,
checked before any model loads where the check does not need the model (issue 26, classes 14 and 15)."""

from __future__ import annotations

import json
import os

import pytest

from selectgym.cli import main
from selectgym.errors import SelectgymError
from tests.commands.test_select_cmd import write_store
from tests.envs.synthetic import synthetic_tables


def one_line_error(capsys, argv: list[str], message: str, code: int = 2) -> str:
    assert main(argv) == code, argv
    err = capsys.readouterr().err
    assert message in err, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err and "usage:" not in err, err
    return err


@pytest.fixture()
def no_model(monkeypatch):
    """Loading a model fails the test: a flag's check must come first."""
    import selectgym.envs.rewards
    import selectgym.finetune.reselect
    import selectgym.finetune.train
    import selectgym.proxies.models
    import selectgym.proxies.proxy

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the flag was checked")

    for module in (selectgym.proxies.models, selectgym.proxies.proxy, selectgym.finetune.train,
                   selectgym.finetune.reselect, selectgym.envs.rewards):
        monkeypatch.setattr(module, "load_model", refuse)


@pytest.fixture()
def no_cuda(monkeypatch):
    """A machine without a CUDA GPU, whatever this one has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def clean_pool(path, n: int = 6):
    """A small alpaca pool with distinct, non-empty examples (no degenerate-data warnings on stderr)."""
    path.write_text("".join(json.dumps({"id": f"ex{i}", "instruction": f"What is {i} plus {i}?",
                                        "output": f"It is {2 * i}."}) + "\n" for i in range(n)))
    return path


@pytest.fixture()
def store(tmp_path):
    """A synthetic feature store and the pool file it records (ids ex0..ex239, with its content hash)."""
    from selectgym.data import load_pool

    train, val = synthetic_tables()
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": i, "instruction": f"q {i}", "output": f"a {i}"}) + "\n"
                            for i in train.ids))
    folder = write_store(tmp_path / "feats", pool, train, val, pool_hash=load_pool(pool).content_hash)
    return folder, pool, train


AGENT = ["--timesteps", "64", "--n-clusters", "4", "--budget", "12", "--no-progress-bar"]


# --- class 14: user mistakes that were internal errors (exit 1) ---------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["select", "--method", "random", "--features", "feats", "--seed", "-1"],
    ["features", "--pool", "p.jsonl", "--seed", "-1"],
    ["train-agent", "--features", "feats", "--seed", "-1"],
    ["train-agent", "--features", "feats", "--cluster-seed", "-1"],
    ["finetune", "--data", "d.jsonl", "--seed", "-1"],
    ["bench", "--seeds", "0", "-1"],
    ["bench", "--suite-seed", "-1"],
    ["demo", "--seeds", "-1"],
    ["pool", "make-suite", "--seed", "-1"],
    ["pool", "make-suite", "--seed", str(2**32)],
    ["model", "pretrain", "--seed", "-1"],
])
def test_a_negative_seed_is_refused_while_the_flags_are_read(tmp_path, capsys, no_model, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, argv, "is not a seed; use a whole number from 0 to 4294967295")
    assert f"argument --{argv[-2].lstrip('-')}" in err or "--seeds" in err
    assert not any(tmp_path.iterdir())  # nothing was built or written


def test_a_negative_seed_in_a_config_file(tmp_path, capsys, no_model):
    config = tmp_path / "c.yaml"
    config.write_text("seed: -3\n")
    one_line_error(capsys, ["features", "--config", str(config), "--pool", str(clean_pool(tmp_path / "p.jsonl"))],
                   "seed: expected a seed from 0 to 4294967295, got -3")


@pytest.mark.parametrize("device", ["tpu", "cuda", "cuda:0", "gpu"], ids=lambda d: f"device-{d}")  # no "cuda" mark
def test_a_device_this_machine_lacks(tmp_path, capsys, no_model, no_cuda, store, device):
    folder, pool, _ = store
    message = "no CUDA GPU is visible on this machine; use --device cpu" if device.startswith("cuda") else \
        f"--device {device!r} is not a device selectgym runs on; use one of auto, cpu, cuda"
    one_line_error(capsys, ["features", "--pool", str(pool), "--out", str(tmp_path / "f"), "--device", device],
                   message)
    assert not (tmp_path / "f").exists()
    one_line_error(capsys, ["train-agent", "--features", str(folder), *AGENT, "--out", str(tmp_path / "p.zip"),
                            "--device", device], message if device != "cuda:0" else "no CUDA GPU is visible")
    assert not (tmp_path / "p.zip").exists()
    finetune = "no CUDA GPU is visible" if device == "cuda" else f"--device {device!r} is not a device"
    one_line_error(capsys, ["finetune", "--data", str(pool), "--out", str(tmp_path / "ft"), "--device", device],
                   finetune)


def test_check_device_accepts_what_torch_can_run_on(no_cuda):
    from selectgym.utils import check_device

    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    assert check_device("cuda:1", available=False) == "cuda:1"
    with pytest.raises(SelectgymError, match="or cuda:N for one GPU"):
        check_device("cuda:x")
    with pytest.raises(SelectgymError, match="use one of auto, cpu, cuda$"):
        check_device("cuda:0", ("auto", "cpu", "cuda"), gpu_index=False)


def test_a_truncated_safetensors_file_is_named(tmp_path, capsys, tokenizer):
    from selectgym.proxies.models import TinyConfig, tiny_model

    folder = tmp_path / "model"
    tiny_model(tokenizer, TinyConfig(seed=0)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pool = clean_pool(tmp_path / "p.jsonl")
    for argv in (["features", "--pool", str(pool), "--out", str(tmp_path / "f"), "--features", "length"],
                 ["finetune", "--data", str(pool), "--out", str(tmp_path / "ft"), "--max-steps", "1"]):
        one_line_error(capsys, [*argv, "--model", str(folder)], f"cannot load model '{folder}': {weights} is damaged "
                                                                 f"or truncated")


@pytest.mark.parametrize(("argv", "message"), [
    (["features", "--lora-dropout", "1.5"], "--lora-dropout must lie in [0, 1), e.g. 0.05; got 1.5"),
    (["features", "--lora-dropout", "1"], "--lora-dropout must lie in [0, 1)"),
    (["features", "--warmup-lr", "-1"], "--warmup-lr must be a positive number, e.g. 2e-4; got -1.0"),
    (["features", "--warmup-lr", "nan"], "--warmup-lr must be a positive number"),
    (["features", "--lora-alpha", "0"], "--lora-alpha must be >= 1"),
    (["features", "--dpo-beta", "0"], "--dpo-beta must be a positive number"),
    (["features", "--temperature", "-1"], "--temperature must be >= 0 (0 samples greedily)"),
    (["features", "--nice-threshold", "nan"], "--nice-threshold must be a number"),
    (["finetune", "--lora-dropout", "1.5"], "--lora-dropout must lie in [0, 1), e.g. 0.05; got 1.5"),
    (["finetune", "--lora-alpha", "0"], "--lora-alpha must be >= 1"),
    (["finetune", "--lr-scheduler", "bogus"], "lr_scheduler must be one of linear, cosine"),
    (["finetune", "--epochs", "nan"], "--epochs must be a number, got nan"),
    (["finetune", "--method", "grpo", "--temperature", "nan"], "--temperature must be a number, got nan"),
    (["train-agent", "--learning-rate", "-1"], "--learning-rate must be a positive number, e.g. 3e-4; got -1.0"),
    (["train-agent", "--learning-rate", "0"], "--learning-rate must be a positive number"),
    (["bench", "--ft-lr", "-1"], "--ft-lr must be a positive number, got -1.0"),
    (["bench", "--proj-dim", "0"], "--proj-dim must be >= 1, got 0"),
    (["bench", "--ft-max-steps", "0"], "--ft-max-steps must be >= 1, or -1"),
    (["bench", "--agent-algo", "sac"], "--agent-algo 'sac' is unknown; choose from ppo"),
    (["model", "pretrain", "--threads", "0"], "argument --threads: '0' is not a count; use a whole number >= 1"),
    (["model", "pretrain", "--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (["model", "pretrain", "--lr", "nan"], "mini lr, weight_decay and prompt_loss_weight must be numbers"),
])
def test_out_of_range_numbers(tmp_path, capsys, no_model, store, argv, message):
    folder, pool, _ = store
    where = {"features": ["--pool", str(pool), "--out", str(tmp_path / "f")],
             "finetune": ["--data", str(pool), "--out", str(tmp_path / "ft")],
             "train-agent": ["--features", str(folder), *AGENT, "--out", str(tmp_path / "p.zip")],
             "bench": ["--suite-dir", str(tmp_path), "--out", str(tmp_path / "b")],
             "model": ["--out", str(tmp_path / "m"), "--no-progress"]}[argv[0]]
    one_line_error(capsys, [*argv, *where], message)
    for name in ("f", "ft", "p.zip", "b", "m"):
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--reward-kwargs", "{a: [1", "'{a: [1' is not valid YAML (expected ',' or ']'"),
    ("--algo-kwargs", "!!python/name:os.system", "could not determine a constructor for the tag "
                                                 "'!!python/name:os.system'; tags are not read"),
    ("--reward-kwargs", "5", "expected a YAML mapping like '{lr: 1.0}', got '5'"),
    ("--training-pools", "[1, 2]", "expected a YAML mapping"),
])
def test_inline_yaml_flags(tmp_path, capsys, store, flag, value, message):
    folder, _, _ = store
    err = one_line_error(capsys, ["train-agent", "--features", str(folder), *AGENT, "--out", str(tmp_path / "p.zip"),
                                  flag, value], message)
    assert f"argument {flag}: " in err and "see `selectgym train-agent --help`" in err


def test_inline_yaml_of_features_and_bench(tmp_path, capsys, no_model):
    pool = clean_pool(tmp_path / "p.jsonl")
    one_line_error(capsys, ["features", "--pool", str(pool), "--completion-reward-kwargs",
                            '!!python/object/apply:os.system ["echo hi"]'], "tags are not read")
    one_line_error(capsys, ["bench", "--agent", "{env_id: [", "--out", str(tmp_path / "b")],
                   "argument --agent: '{env_id: [' is not valid YAML")
    one_line_error(capsys, ["pool", "make-suite", "--target-tasks", "{a: }}", "--out", str(tmp_path / "s")],
                   "argument --target-tasks:")
    assert not (tmp_path / "b").exists() and not (tmp_path / "s").exists()


def test_finetune_max_length_no_example_fits(tmp_path, capsys, no_model, tokenizer):
    from selectgym.data import load_pool
    from selectgym.finetune.trl_data import check_max_length

    pool = clean_pool(tmp_path / "p.jsonl")
    err = one_line_error(capsys, ["finetune", "--data", str(pool), "--max-length", "8", "--out", str(tmp_path / "ft")],
                         "--max-length 8 leaves no example of")
    shortest = int(err.split("the shortest prompt takes ")[1].split()[0])
    assert f"use --max-length {shortest + 1} or more" in err
    check_max_length(load_pool(pool), tokenizer, shortest + 1)  # the length it recommends keeps an example
    one_line_error(capsys, ["finetune", "--data", str(pool), "--max-length", "1", "--out", str(tmp_path / "ft")],
                   "like the default 256")
    assert not (tmp_path / "ft").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Say {i}", "chosen": f"{i}", "rejected": "no"})
                             + "\n" for i in range(4)))
    one_line_error(capsys, ["finetune", "--method", "dpo", "--data", str(pairs), "--max-length", "8", "--out",
                            str(tmp_path / "ft")], "--max-length 8 leaves no example of")


def test_finetune_max_length_that_drops_some_examples_warns(tmp_path, caplog, tokenizer):
    from selectgym.data import load_pool
    from selectgym.finetune.trl_data import check_max_length

    pool = tmp_path / "p.jsonl"
    pool.write_text(json.dumps({"id": "short", "instruction": "Hi", "output": "Hello"}) + "\n" +
                    json.dumps({"id": "long", "instruction": "word " * 200, "output": "ok"}) + "\n")
    with caplog.at_level("WARNING"):
        check_max_length(load_pool(pool), tokenizer, 64)
    assert "1 of 2 examples" in caplog.text and "left out of training" in caplog.text


# --- class 15: exit 2, but the line misled ------------------------------------------------------------------------


def test_an_interrupted_and_a_concurrent_features_run(tmp_path, capsys, monkeypatch):
    """A second run on the same --out while the first computes is a concurrent run, not a finished shard; a store
    stopped before its first shard says so, not that it has no 'train' features."""
    import selectgym.proxies.pipeline as pipeline

    pool = clean_pool(tmp_path / "p.jsonl")
    out = tmp_path / "f"
    argv = ["features", "--pool", str(pool), "--out", str(out), "--features", "length", "--no-progress"]
    select = ["select", "--method", "random", "--features", str(out), "--budget", "2", "--out",
              str(tmp_path / "s.jsonl")]
    seen = {}

    def meanwhile(*args, **kwargs):  # the first run, about to load its model: a second starts
        seen["second"] = (main(argv), capsys.readouterr().err)
        seen["select"] = (main(select), capsys.readouterr().err)
        raise KeyboardInterrupt  # then the first is stopped before its first shard

    monkeypatch.setattr(pipeline, "build_proxy", meanwhile)
    assert main(argv) == 130
    capsys.readouterr()
    code, err = seen["second"]
    assert code == 2 and err.count("\n") == 1, err
    assert f"another `selectgym features` run (process {os.getpid()}) is computing {out}" in err
    assert "already finished" not in err
    code, err = seen["select"]
    assert code == 2 and "is still being computed by `selectgym features`" in err and "wait for it" in err
    err = one_line_error(capsys, select, "is incomplete: `selectgym features` was interrupted (no shard of 'train' "
                                         "finished); rerun `selectgym features` with the same settings")
    assert "has no 'train' features" not in err


@pytest.mark.parametrize(("rows", "message"), [
    (lambda ids: ids[:100], "the pool has 100 of the store's 240 ids (a subset)"),
    (lambda ids: ids[::-1], "it has the same 240 ids in another order (the same examples)"),
    (lambda ids: [f"new{i}" for i in range(50)], "it holds other examples (none of its 50 ids is among the "
                                                  "store's 240)"),
    (lambda ids: [*ids, "extra"], "the pool has 240 of the store's 240 ids and 1 the features lack (first: 'extra')"),
])
def test_a_pool_other_than_the_features_is_told_apart(tmp_path, capsys, store, rows, message):
    folder, pool, train = store
    lines = {json.loads(line)["id"]: line for line in pool.read_text().splitlines()}
    other = tmp_path / "other.jsonl"
    other.write_text("".join(lines.get(i, json.dumps({"id": i, "instruction": "q", "output": "a"})) + "\n"
                             for i in rows(list(train.ids))))
    err = one_line_error(capsys, ["select", "--method", "random", "--features", str(folder), "--pool", str(other),
                                  "--out", str(tmp_path / "o.jsonl")], message)
    assert "has changed since" not in err and not (tmp_path / "o.jsonl").exists()


def test_an_edited_pool_still_says_it_changed(tmp_path, capsys, store):
    folder, pool, _ = store
    pool.write_text(pool.read_text().replace('"a ex3"', '"an edited answer"'))
    one_line_error(capsys, ["select", "--method", "random", "--features", str(folder), "--out",
                            str(tmp_path / "o.jsonl")], "has changed since its features")


def test_observe_a_name_no_feature_has(tmp_path, capsys, store):
    folder, _, _ = store
    base = ["train-agent", "--features", str(folder), *AGENT, "--out", str(tmp_path / "p.zip")]
    err = one_line_error(capsys, [*base, "--observe", "bogus"], "features lack ['bogus']: that is not a known "
                                                                "feature or array; observe any of alignment")
    assert "recompute" not in err
    one_line_error(capsys, [*base, "--observe", "grad"], "as one number per example (they hold a vector")
    one_line_error(capsys, [*base, "--observe", "grpo_signal"], "recompute them with `selectgym features --features "
                                                                "grpo`")
    one_line_error(capsys, [*base, "--train-grad", "bogus"], "train_grad 'bogus' is not an array of these features; "
                                                             "use one of embedding, grad")
    one_line_error(capsys, [*base, "--val-grad", "pg_grad"], "val_grad 'pg_grad' is not an array of these "
                                                             "validation features")
    assert not (tmp_path / "p.zip").exists()


def test_a_cache_variable_that_names_a_file(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("x")
    monkeypatch.setenv("SELECTGYM_CACHE", str(blocker))
    pool = clean_pool(tmp_path / "p.jsonl")
    one_line_error(capsys, ["pool", "inspect", str(pool)], f"SELECTGYM_CACHE={blocker} cannot hold the cache: it is "
                                                           f"a file, not a folder; point SELECTGYM_CACHE at a folder")
    monkeypatch.setenv("SELECTGYM_CACHE", str(blocker / "sub"))
    one_line_error(capsys, ["pool", "inspect", str(pool)], f"SELECTGYM_CACHE={blocker / 'sub'} cannot hold the cache")


def test_argparse_mistakes_are_one_line(capsys):
    one_line_error(capsys, ["select", "--seed", "x"], "argument --seed: 'x' is not a seed")
    one_line_error(capsys, ["select", "--budget"], "argument --budget: expected one argument")
    one_line_error(capsys, ["bogus"], "invalid choice: 'bogus'")
    one_line_error(capsys, ["pool"], "the following arguments are required: ACTION; see `selectgym pool --help`")


# --- beyond the list ----------------------------------------------------------------------------------------------


def test_algo_kwargs_the_algorithm_does_not_take(tmp_path, capsys, store):
    folder, _, _ = store
    base = ["train-agent", "--features", str(folder), *AGENT, "--out", str(tmp_path / "p.zip")]
    err = one_line_error(capsys, [*base, "--algo-kwargs", "{bogus: 1}"], "--algo-kwargs: ppo has no setting(s) "
                                                                         "['bogus']; it takes ")
    assert "learning_rate" in err and "_init_setup_model" not in err
    one_line_error(capsys, [*base, "--algo-kwargs", "{learning_rate: -1}"], "ppo refuses them: Invalid learning rate")
    assert not (tmp_path / "p.zip").exists()


def test_training_pools_with_a_negative_seed(tmp_path, capsys, store):
    folder, _, _ = store
    one_line_error(capsys, ["train-agent", "--env-id", "selectgym/ExampleSelect-v0", "--training-pools",
                            "{families: {a: {}, b: {}}, seed: -1}", "--out", str(tmp_path / "p.zip"),
                            "--pools-dir", str(tmp_path / "pools")], "training_pools seed must be a whole number")
    assert not (tmp_path / "pools").exists()


def test_finetune_lora_targets_the_model_lacks(tmp_path, capsys):
    pool = clean_pool(tmp_path / "p.jsonl")
    one_line_error(capsys, ["finetune", "--data", str(pool), "--lora-targets", "bogus", "--max-steps", "1", "--out",
                            str(tmp_path / "ft")], "LoRA target modules ['bogus'] are not in this model")


def test_mini_corpus_too_small_names_steps(tmp_path, capsys):
    one_line_error(capsys, ["model", "pretrain", "--out", str(tmp_path / "m"), "--steps", "1", "--batch-size", "4",
                            "--max-length", "8", "--vocab-size", "300", "--no-progress"],
                   "less than one batch of 4; raise --steps or --max-length")
