"""Everyday mistakes through the CLI: exit code 2, one line on stderr, no traceback, never a wrong number."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selectgym.cli import main
from selectgym.proxies.table import FeatureTable
from tests.commands.test_select_cmd import write_store
from tests.envs.synthetic import synthetic_tables


def one_line_error(capsys, argv: list[str], message: str, code: int = 2) -> str:
    assert main(argv) == code, argv
    err = capsys.readouterr().err
    assert message in err, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_binary_file_as_a_pool(tmp_path, capsys):
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(bytes(range(256)) * 8)
    one_line_error(capsys, ["pool", "inspect", str(binary), "--tokenizer", "none"], "is not UTF-8 text")
    one_line_error(capsys, ["pool", "inspect", str(tmp_path), "--tokenizer", "none"], "is a folder")


@pytest.mark.parametrize(("yaml", "message"), [
    ("proj_dim: big\n", "proj_dim: expected a whole number, got 'big'"),
    ("batch_size: 8.5\n", "batch_size: expected a whole number, got 8.5"),
    ("features: 5\n", "unknown feature(s) 5"),
    ("progress: maybe\n", "progress: expected true or false"),
    ("completion_reward_kwargs: [1]\n", "completion_reward_kwargs: expected a mapping"),
    ("lora_targets: {q: 1}\n", "lora_targets: expected a list"),
    ("dim: 64\nk: 2\n", "dim is now proj_dim; k is now rollouts"),
])
def test_yaml_values_of_the_wrong_type(tmp_path, capsys, yaml, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    one_line_error(capsys, ["features", "--config", str(config), "--pool", str(tmp_path / "p.jsonl")], message)


def test_yaml_list_for_a_number_in_finetune(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: [1, 2]\n")
    one_line_error(capsys, ["finetune", "--config", str(config), "--data", str(tmp_path / "d.jsonl")],
                   "epochs: expected a number, got [1, 2]")


def test_a_folder_or_file_that_is_not_a_model(suite_dir, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    pool = str(suite_dir / "sft.jsonl")
    err = one_line_error(capsys, ["features", "--pool", pool, "--model", str(folder), "--out", str(tmp_path / "f")],
                         "has no config.json, so it is not a Hugging Face model")
    assert "sentencepiece" not in err
    one_line_error(capsys, ["features", "--pool", pool, "--model", str(folder / "a.txt"), "--out",
                            str(tmp_path / "f")], "is a file but not a .gguf model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    one_line_error(capsys, ["features", "--pool", pool, "--model", str(broken), "--out", str(tmp_path / "f")],
                   f"cannot load model '{broken}'")


def test_damaged_policy_zip(suite_dir, tmp_path, capsys):
    policy = tmp_path / "policy.zip"
    policy.write_bytes(b"PK\x03\x04 not really a zip")
    policy.with_suffix(".json").write_text(json.dumps({
        "format": "selectgym-policy/1", "algorithm": "ppo", "env_id": "selectgym/FeatureSelect-v0",
        "env_kwargs": {}, "observation": {"features": []}}))
    one_line_error(capsys, ["select", "--policy", str(policy), "--pool", str(suite_dir / "sft.jsonl"), "--out",
                            str(tmp_path / "o.jsonl")], "policy.zip is not a readable policy")


def test_impossible_output_paths(suite_dir, tmp_path, capsys):
    train, val = synthetic_tables()
    folder = write_store(tmp_path / "f", suite_dir / "sft.jsonl", train, val)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = ["select", "--method", "random", "--features", str(folder), "--pool", str(tmp_path / "p.jsonl")]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i, "instruction": "q", "output": "a"}) + "\n"
                                              for i in train.ids))
    one_line_error(capsys, [*base, "--out", str(blocker / "o.jsonl")], "a file stands where a folder is needed")
    one_line_error(capsys, [*base, "--out", "/proc/selectgym/o.jsonl"], "/proc/selectgym")


def test_select_method_policy_without_a_policy_file(suite_dir, tmp_path, capsys):
    train, val = synthetic_tables()
    folder = write_store(tmp_path / "f", suite_dir / "sft.jsonl", train, val)
    one_line_error(capsys, ["select", "--method", "policy", "--features", str(folder)], "use --policy FILE.zip")


def test_nan_validation_gradient_in_train_agent(suite_dir, tmp_path, capsys):
    train, val = synthetic_tables()
    grad = val.get("grad").copy()
    grad[2, 3] = np.nan
    folder = write_store(tmp_path / "f", suite_dir / "sft.jsonl", train,
                         FeatureTable(val.ids, {**val.arrays, "grad": grad}))
    err = one_line_error(capsys, ["train-agent", "--features", str(folder), "--timesteps", "64", "--n-clusters",
                                  "4", "--budget", "12", "--no-progress-bar", "--out", str(tmp_path / "p.zip")],
                         "NaN or inf in table 'val' of")
    assert "'grad': 1 row(s), e.g. 'val2'" in err


def test_missing_array_names_the_feature_to_ask_for(suite_dir, tmp_path, capsys):
    train, val = synthetic_tables()
    folder = write_store(tmp_path / "f", suite_dir / "sft.jsonl", train, val)
    one_line_error(capsys, ["select", "--method", "nice", "--option", "gradient_type=sgd", "--features", str(folder),
                            "--out", str(tmp_path / "o.jsonl")], "selectgym features --features ... nice")


def test_finetune_eval_without_answers_is_refused_before_training(suite_dir, tmp_path, capsys):
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text('{"instruction": "Say hi", "output": "hi"}\n')
    one_line_error(capsys, ["finetune", "--data", str(suite_dir / "sft.jsonl"), "--eval", str(alpaca), "--out",
                            str(tmp_path / "ft")], "have no reference answer to check")
    assert not (tmp_path / "ft").exists()


def test_top_level_help_is_clean(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "5%" in out and "option_strings" not in out


def test_verbose_shows_the_traceback(tmp_path, capsys):
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    assert main(["-v", "pool", "inspect", str(binary), "--tokenizer", "none"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("selectgym: error:")


# --- nothing a user owns is overwritten (issue: data loss) -------------------------------------------------------


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes: equal snapshots mean nothing was changed or deleted."""
    from pathlib import Path

    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def user_folder(path, files=("notes.txt", "sub/data.csv")):
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"the user's own {name}\n")
    return snapshot(path)


TINY_MINI = ["--steps", "2", "--batch-size", "4", "--vocab-size", "300", "--hidden-size", "16",
             "--intermediate-size", "32", "--num-hidden-layers", "1", "--num-attention-heads", "2", "--no-progress"]


def test_pretrain_refuses_a_users_folder_and_the_current_one(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    before = user_folder(home)
    one_line_error(capsys, ["model", "pretrain", "--out", str(home), *TINY_MINI], "selectgym did not make")
    monkeypatch.chdir(home)
    one_line_error(capsys, ["model", "pretrain", "--out", ".", *TINY_MINI], "pass --overwrite")
    assert snapshot(home) == before


def test_pretrain_overwrite_writes_beside_the_users_files_and_rebuilds_its_own(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    before = user_folder(home)
    assert main(["model", "pretrain", "--out", str(home), "--overwrite", *TINY_MINI]) == 0
    after = snapshot(home)
    assert all(after[name] == data for name, data in before.items())
    assert "build.json" in after and "config.json" in after
    fresh = tmp_path / "fresh"
    assert main(["model", "pretrain", "--out", str(fresh), *TINY_MINI]) == 0
    assert main(["model", "pretrain", "--out", str(fresh), *TINY_MINI]) == 0  # its own folder: rebuilt in place
    assert (fresh / "build.json").exists()
    capsys.readouterr()


def test_atomic_dir_swaps_its_own_folders_and_never_deletes_a_users(tmp_path):
    from selectgym.utils import atomic_dir

    mine = tmp_path / "mine"
    with atomic_dir(mine) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_dir(mine) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in mine.iterdir()) == [".selectgym", "b.txt"]  # made by selectgym: replaced whole
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    (theirs / "b.txt").write_text("old")
    with atomic_dir(theirs) as tmp:
        (tmp / "b.txt").write_text("new")
    assert (theirs / "keep.txt").read_text() == "mine" and (theirs / "b.txt").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


@pytest.fixture()
def store_and_pool(suite_dir, tmp_path):
    """A synthetic store whose pool is a copy of the suite's SFT pool (the ids of synthetic_tables)."""
    train, val = synthetic_tables()
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": i, "instruction": f"q {i}", "output": "a"}) + "\n" for i in train.ids))
    valf = tmp_path / "val.jsonl"
    valf.write_text("".join(json.dumps({"id": i, "question": f"v {i}", "answer": "1", "task": "t" + str(n % 2)})
                            + "\n" for n, i in enumerate(val.ids)))
    folder = write_store(tmp_path / "f", pool, train, val)
    return folder, pool, valf


@pytest.mark.parametrize("method", [["--method", "random"], ["--policy", "policy.zip"]])
def test_select_never_writes_over_its_pool_or_validation_file(store_and_pool, tmp_path, capsys, method):
    folder, pool, valf = store_and_pool
    before = snapshot(tmp_path)
    for out in (pool, valf):
        for extra in ([], ["--overwrite"]):
            one_line_error(capsys, ["select", *method, "--features", str(folder), "--pool", str(pool), "--val",
                                    str(valf), "--out", str(out), *extra], "writing there would destroy it")
    assert snapshot(tmp_path) == before


def test_select_scores_file_never_replaces_a_pool(store_and_pool, tmp_path, capsys):
    folder, pool, _ = store_and_pool
    named = tmp_path / "data.scores.jsonl"
    named.write_bytes(pool.read_bytes())
    before = snapshot(tmp_path)
    one_line_error(capsys, ["select", "--method", "random", "--features", str(folder), "--pool", str(named),
                            "--out", str(tmp_path / "data.jsonl")], "--out (its scores file)")
    assert snapshot(tmp_path) == before


def test_select_refuses_an_existing_out_file_without_overwrite(store_and_pool, tmp_path, capsys):
    folder, pool, _ = store_and_pool
    out = tmp_path / "mine.jsonl"
    out.write_text("my notes\n")
    base = ["select", "--method", "random", "--features", str(folder), "--pool", str(pool), "--budget", "5",
            "--out", str(out)]
    one_line_error(capsys, base, "already exists")
    assert out.read_text() == "my notes\n"
    assert main([*base, "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_finetune_merge_never_replaces_the_model_or_a_users_merged_folder(suite_dir, tmp_path, capsys):
    out = tmp_path / "ft"
    merged = out / "merged"
    merged.mkdir(parents=True)
    before = user_folder(merged, ("config.json", "model.safetensors", "README.md"))
    data = str(suite_dir / "sft.jsonl")
    one_line_error(capsys, ["finetune", "--data", data, "--out", str(out), "--merge"], "pass --overwrite")
    for extra in ([], ["--overwrite"]):
        one_line_error(capsys, ["finetune", "--data", data, "--model", str(merged), "--out", str(out), "--merge",
                                *extra], "is the input --model")
    one_line_error(capsys, ["finetune", "--data", data, "--out", str(suite_dir)], "is a folder selectgym did not make")
    assert snapshot(merged) == before


def test_make_suite_keeps_a_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    before = user_folder(out, ("sft.jsonl", "suite.json"))
    one_line_error(capsys, ["pool", "make-suite", "--out", str(out), "--size", "20", "--validation-size", "4"],
                   "selectgym did not make")
    assert snapshot(out) == before
    fresh = tmp_path / "fresh"
    args = ["pool", "make-suite", "--out", str(fresh), "--size", "20", "--validation-size", "4"]
    assert main(args) == 0 and main(args) == 0  # its own folder: written again
    capsys.readouterr()


def test_features_bench_and_train_agent_refuse_a_users_folder_or_file(suite_dir, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    before = user_folder(mine)
    one_line_error(capsys, ["features", "--pool", str(suite_dir / "sft.jsonl"), "--out", str(mine)],
                   "selectgym did not make")
    one_line_error(capsys, ["bench", "--out", str(mine)], "selectgym did not make")
    one_line_error(capsys, ["demo", "--out", str(mine)], "selectgym did not make")
    one_line_error(capsys, ["train-agent", "--features", str(mine), "--out", str(mine / "notes.txt")],
                   "already exists")
    one_line_error(capsys, ["train-agent", "--features", str(mine), "--out", str(mine)], "is the input --features")
    one_line_error(capsys, ["train-agent", "--features", str(mine), "--out", str(mine / "sub")], "is a folder")
    assert snapshot(mine) == before


# --- a flag the command cannot honour is an error; labels matched by id -----------------------------------------


def test_select_features_with_another_val_file_is_refused(store_and_pool, tmp_path, capsys):
    folder, pool, valf = store_and_pool
    base = ["select", "--method", "random", "--features", str(folder), "--pool", str(pool), "--budget", "3"]
    one_line_error(capsys, [*base, "--val", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "a.jsonl")],
                   "no such file")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "z", "question": "q", "answer": "1"}) + "\n")
    one_line_error(capsys, [*base, "--val", str(other), "--out", str(tmp_path / "b.jsonl")],
                   "is not the validation set the features")
    one_line_error(capsys, ["select", "--method", "random", "--features", str(folder), "--val", str(other), "--out",
                            str(tmp_path / "c.jsonl")], "is not the validation set")
    assert main([*base, "--val", str(valf), "--out", str(tmp_path / "d.jsonl")]) == 0  # the same file is fine
    capsys.readouterr()


def test_balance_subtasks_reads_labels_by_id_not_by_row(store_and_pool, tmp_path, capsys):
    folder, pool, valf = store_and_pool
    rows = valf.read_text().splitlines()
    shuffled = tmp_path / "val_shuffled.jsonl"
    shuffled.write_text("\n".join(rows[::-1]) + "\n")
    picks = []
    for i, target in enumerate((valf, shuffled)):
        out = tmp_path / f"bal{i}.jsonl"
        assert main(["select", "--method", "less", "--option", "gradient_type=sgd", "--features", str(folder),
                     "--pool", str(pool), "--val", str(target), "--balance-subtasks", "task", "--budget", "6",
                     "--out", str(out)]) == 0
        picks.append([json.loads(line)["id"] for line in out.read_text().splitlines()])
    assert picks[0] == picks[1]
    capsys.readouterr()


# --- a policy and its features agree on the proxy's weights -------------------------------------------------------


def _tables_with(weights: str, model: str, dim: int = 16):
    train, val = synthetic_tables(dim=dim)
    meta = {"config": {"proj_dim": dim, "seed": 0, "model": model}, "weights": weights}
    return FeatureTable(train.ids, train.arrays, meta), val


def test_policy_checks_the_weights_digest_not_the_models_name(tmp_path):
    from selectgym.agents.config import AgentConfig
    from selectgym.agents.policy_file import load_policy
    from selectgym.agents.train import train_agent
    from selectgym.errors import SelectgymError

    train, val = _tables_with("aaaa", "mini")
    cfg = AgentConfig(env_id="selectgym/ExampleSelect-v0", algo="ppo", timesteps=64, budget=12, reward="linear",
                      progress_bar=False, algo_kwargs={"n_steps": 32, "batch_size": 32})
    train_agent(cfg, train, val, out=tmp_path / "p.zip", feature_config=train.meta["config"])
    policy = load_policy(tmp_path / "p.zip")
    same_weights, _ = _tables_with("aaaa", "/models/mini-copy")
    policy.check_schema(same_weights)  # the same bytes under another name
    other_build, _ = _tables_with("bbbb", "mini")
    with pytest.raises(SelectgymError, match="proxy weights bbbb"):
        policy.check_schema(other_build)


def test_train_agent_eval_features_must_match_the_training_proxy(tmp_path, capsys, suite_dir):
    train, val = _tables_with("aaaa", "mini")
    a = write_store(tmp_path / "a", suite_dir / "sft.jsonl", train, val, config=train.meta["config"],
                    weights="aaaa")
    other, oval = _tables_with("bbbb", "mini")
    b = write_store(tmp_path / "b", suite_dir / "sft.jsonl", other, oval, config=other.meta["config"],
                    weights="bbbb")
    small, sval = _tables_with("aaaa", "mini", dim=8)
    c = write_store(tmp_path / "c", suite_dir / "sft.jsonl", small, sval, config=small.meta["config"],
                    weights="aaaa")
    base = ["train-agent", "--features", str(a), "--timesteps", "64", "--budget", "12", "--no-progress-bar"]
    one_line_error(capsys, [*base, "--eval-features", str(b), "--out", str(tmp_path / "p.zip")], "proxy weights bbbb")
    one_line_error(capsys, [*base, "--eval-features", str(c), "--out", str(tmp_path / "p.zip")], "proj_dim 8")


# --- budgets: a count is a count ------------------------------------------------------------------------------------


def test_bench_budgets_keep_counts_as_counts(tmp_path):
    from selectgym.bench.report import markdown_table
    from selectgym.cli import _subparser, build_parser
    from selectgym.commands.options import apply_config

    config = tmp_path / "b.yaml"
    config.write_text("budgets: [1, 2, 0.25, 0.05]\n")
    parser = build_parser()
    sub, argv = _subparser(parser, ["bench", "--config", str(config)])
    args = apply_config(sub, sub.parse_args(argv), argv)
    assert args.budgets == [1, 2, 0.25, 0.05] and isinstance(args.budgets[1], int)
    args = sub.parse_args(["--budgets", "2", "0.1"])
    assert args.budgets == [2, 0.1] and isinstance(args.budgets[0], int)
    row = {"mean": 0.1, "std": 0.0, "vs_random": 0.0, "p_random": 1.0, "vs_full": 0.0, "p_full": 1.0,
           "useful_share": 0.5, "val_loss": 1.0, "select_s": 0.0, "train_s": 0.0}
    table = markdown_table([{**row, "method": "less", "budget": 2}, {**row, "method": "less", "budget": 0.25}])
    assert "| less | 2 examples |" in table and "200%" not in table
    from selectgym.bench.report import summarise

    runs = [{"method": "less", "budget": b, "seed": 0, "accuracy": 0.1} for b in (2, 0.25, 0.05)]
    assert [r["budget"] for r in summarise(runs)] == [0.05, 0.25, 2]
