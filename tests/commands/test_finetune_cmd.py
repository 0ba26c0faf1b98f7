"""`selectgym finetune` end to end on the suite: train, evaluate, merge, and one-line errors."""

from __future__ import annotations

import json

import pytest

from selectgym.cli import main


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as done:
        main(["finetune", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--method", "--data", "--eval", "--out", "--merge", "--config", "--reselect", "--num-generations"):
        assert flag in out


@pytest.mark.slow
def test_finetune_sft_end_to_end(suite_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "ft"
    config = tmp_path / "ft.yaml"
    config.write_text("method: sft\nmax_steps: 2\nbatch_size: 2\nmax_length: 128\nlr: 0.001\n")
    code = main(["finetune", "--config", str(config), "--data", str(suite_dir / "sft.jsonl"), "--model", "tiny",
                 "--eval", str(suite_dir / "validation.jsonl"), "--out", str(out), "--merge",
                 "--max-completion-length", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"adapter: {out / 'adapter'}" in printed and f"merged model: {out / 'merged'}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["n"] == 16 and 0.0 <= metrics["accuracy"] <= 1.0
    assert '"val_loss"' in printed
    assert (out / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert not any("lora_" in n for n, _ in merged.named_parameters())


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["finetune", "--data", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1


def test_bad_config_is_a_one_line_error(suite_dir, capsys):
    code = main(["finetune", "--data", str(suite_dir / "verifiable.jsonl"), "--method", "grpo", "--batch-size", "3"])
    assert code == 2
    assert "divisible by num_generations" in capsys.readouterr().err
