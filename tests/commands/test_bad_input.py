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
