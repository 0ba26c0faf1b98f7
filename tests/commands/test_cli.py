import json

import pytest

from selectgym.cli import COMMANDS, _available, main


def test_help_for_every_subcommand(capsys):
    for name in _available():
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert name.split("-")[0] in capsys.readouterr().out
    assert set(_available()) <= set(COMMANDS)


def test_make_suite_and_inspect(tmp_path, capsys):
    assert main(["pool", "make-suite", "--out", str(tmp_path), "--seed", "1", "--size", "60"]) == 0
    assert main(["pool", "inspect", str(tmp_path / "sft.jsonl"), "--json", "--tokenizer", "none"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n"):])
    assert summary["examples"] == 60 and summary["format"] == "alpaca"
    assert sum(summary["defects"].values()) == 60


def test_yaml_config_then_flags(tmp_path, capsys):
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"out: {tmp_path / 'o'}\nsize: 40\nseed: 2\n")
    assert main(["pool", "make-suite", "--config", str(cfg), "--size", "30"]) == 0
    assert len((tmp_path / "o" / "sft.jsonl").read_text().splitlines()) == 30


def test_unknown_yaml_key_and_bad_file_are_one_line_errors(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sizee: 3\n")
    assert main(["pool", "make-suite", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown setting(s) sizee" in err and err.count("\n") == 1
    broken = tmp_path / "x.jsonl"
    broken.write_text('{"instruction": "a"}\n')
    assert main(["pool", "inspect", str(broken), "--format", "alpaca", "--tokenizer", "none"]) == 2
    assert "x.jsonl:1: missing field 'output'" in capsys.readouterr().err


def test_demo_settings_come_from_configs_demo_yaml_and_flags_override():
    import yaml

    from selectgym.bench.harness import BenchConfig
    from selectgym.cli import build_parser
    from selectgym.commands.demo import DEMO_CONFIG
    from selectgym.commands.options import dataclass_from_args

    shipped = yaml.safe_load(DEMO_CONFIG.read_text())
    args = build_parser().parse_args(["demo", "--seeds", "0", "1"])
    cfg = dataclass_from_args(BenchConfig, args, args._fields)
    assert cfg.suite_size == shipped["suite_size"] and cfg.methods == shipped["methods"]
    assert cfg.seeds == [0, 1] and shipped["seeds"] != [0, 1]  # the flag won
    assert cfg.split_target  # the default run never scores a method on the target problems it aimed at
    from selectgym.agents.config import AgentConfig

    agent = AgentConfig(**cfg.agent, algo=cfg.agent_algo)  # the demo's agent settings are a valid agent
    assert agent.env_id == "selectgym/ExampleSelect-v0" and agent.alignment_target == "unit_mean"
    assert (DEMO_CONFIG.parents[2] / "configs" / "demo.yaml").resolve() == DEMO_CONFIG  # the checkout's copy


def test_select_options_repeat_or_list():
    from selectgym.cli import build_parser

    args = build_parser().parse_args(["select", "--option", "mode=sim", "--option", "q=4", "q2=1"])
    assert args.option == ["mode=sim", "q=4", "q2=1"]
