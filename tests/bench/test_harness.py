import json

import numpy as np
import pytest

from selectgym.bench.config import method_needs
from selectgym.bench.harness import BenchConfig, run_bench
from selectgym.bench.report import markdown_table, summarise
from selectgym.data import load_pool
from selectgym.errors import SelectgymError


@pytest.mark.slow
def test_bench_table_matches_its_json(tmp_path):
    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4,
                      methods=["less", "gradalign:sim", "random", "full"], budgets=[0.1], seeds=[0, 1],
                      proj_dim=64, proxy_warmup_steps=1, rollouts=2, max_new_tokens=2, ft_max_steps=1,
                      ft_batch_size=2)
    result = run_bench(cfg)
    saved = json.loads((tmp_path / "b" / "runs.json").read_text())
    runs = saved["runs"]
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("less", "random", "full") for s in (0, 1))
    # the random-weight proxy solves no validation problem: GradAlign's sim mode is recorded as failed, not fatal
    assert {f["method"] for f in saved["failures"]} == {"gradalign:sim"}
    table = (tmp_path / "b" / "table.md").read_text()
    assert table.startswith(markdown_table(summarise(runs)))
    assert "- gradalign:sim failed: the pooled validation GRPO gradient is zero" in table
    assert table == result["table"]
    pool = load_pool(tmp_path / "b" / "suite" / "sft.jsonl")
    useful = {ex.id: bool(ex.meta["useful"]) for ex in pool}
    for run in runs:
        assert run["n_selected"] == len(run["ids"]) == (40 if run["method"] == "full" else 4)
        assert run["useful_share"] == pytest.approx(np.mean([useful[i] for i in run["ids"]]))
        assert 0.0 <= run["accuracy"] <= 1.0 and np.isfinite(run["val_loss"])
    rand = {r["seed"]: r["ids"] for r in runs if r["method"] == "random"}
    assert rand[0] != rand[1]
    assert all((tmp_path / "b" / name).stat().st_size > 1000 for name in ("accuracy_vs_budget.png",
                                                                         "cost_per_method.png"))


def test_bench_config_errors():
    with pytest.raises(SelectgymError, match=r"unknown method\(s\) \['lesss'\]"):
        BenchConfig(methods=["lesss"])
    with pytest.raises(SelectgymError, match="budget must be a share in"):
        BenchConfig(budgets=[0])
    with pytest.raises(SelectgymError, match="ambiguous"):
        BenchConfig(budgets=[1.0])
    assert BenchConfig(budgets=[5, 0.1]).budgets == [5, 0.1]  # counts and shares, as everywhere
    with pytest.raises(SelectgymError, match=r"agent settings \['timesteps'\] come from the benchmark"):
        BenchConfig(agent={"timesteps": 5})
    with pytest.raises(SelectgymError, match=r"agent has no setting\(s\) \['chunks'\]"):
        BenchConfig(agent={"chunks": 8})


def test_gradalign_modes_read_the_verifiable_pool_and_random_reads_none():
    assert method_needs("gradalign:sim") == method_needs("gradalign") == ["verifiable"]
    assert method_needs("random") == [] and method_needs("less") == ["sft"]


def test_bench_agent_settings_reach_the_policy_it_trains(tmp_path):
    from selectgym.agents.policy_file import load_policy
    from selectgym.bench.harness import Bench
    from tests.envs.synthetic import synthetic_tables

    cfg = BenchConfig(out=str(tmp_path / "b"), agent_algo="ppo", agent_timesteps=128,
                      agent={"env_id": "selectgym/ExampleSelect-v0", "chunk": 8, "n_envs": 2, "n_steps": 64,
                             "minibatch_size": 64, "alignment_target": "unit_mean"})
    path = Bench(cfg).policy(12, 0, *synthetic_tables())
    sidecar = load_policy(path).sidecar
    assert sidecar["env_id"] == "selectgym/ExampleSelect-v0" and sidecar["algorithm"] == "ppo"
    assert sidecar["env_kwargs"]["chunk"] == 8 and sidecar["env_kwargs"]["alignment_target"] == "unit_mean"


def test_results_saved_before_a_setting_existed_still_resume(tmp_path):
    from dataclasses import asdict

    from selectgym.bench.config import changed_settings

    cfg = BenchConfig(out=str(tmp_path / "b"))
    older = {k: v for k, v in asdict(cfg).items() if k != "agent"}  # saved before `agent` was a setting
    assert changed_settings(older, cfg) == []
    assert changed_settings(older, BenchConfig(out=cfg.out, agent={"chunk": 8})) == ["agent"]
    assert changed_settings({**older, "seeds": [9]}, cfg) == ["seeds"]


def _fake_finetune(calls, die_after=None):
    """A stand-in for LoRA training: records which runs trained, and can die like a killed process."""

    def finetune(self, ids, seed, full):
        if die_after is not None and len(calls) == die_after:
            raise KeyboardInterrupt
        calls.append((len(ids), seed, full, self._val_eval.name))
        return {"accuracy": 0.1 * seed, "val_loss": 1.0, "train_seconds": 0.0, "useful_share": 0.5}

    return finetune


def test_bench_resumes_after_a_kill_and_refuses_other_settings(tmp_path, monkeypatch):
    from selectgym.bench.harness import Bench

    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4, methods=["random", "full"],
                      seeds=[0, 1], budgets=[0.1])
    calls: list = []
    monkeypatch.setattr(Bench, "finetune", _fake_finetune(calls, die_after=3))
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg)
    assert len(json.loads((tmp_path / "b" / "runs.json").read_text())["runs"]) == 3
    monkeypatch.setattr(Bench, "finetune", _fake_finetune(calls))
    result = run_bench(cfg)
    assert len(calls) == 4  # the fourth run only, not all four again
    assert sorted((r["method"], r["seed"]) for r in result["runs"]) == [("full", 0), ("full", 1), ("random", 0),
                                                                          ("random", 1)]
    with pytest.raises(SelectgymError, match=r"other settings \(seeds\)"):
        run_bench(BenchConfig(**{**cfg.__dict__, "seeds": [0, 1, 2]}))


def test_resume_refuses_runs_selected_with_another_build_of_the_proxy(tmp_path, caplog):
    from selectgym.bench.harness import Bench

    cfg = BenchConfig(out=str(tmp_path / "b"), methods=["less", "random"], seeds=[0])
    bench = Bench(cfg, progress=False)
    bench.proxy_digest = "aaaa"
    less = {"method": "less", "budget": 0.05, "seed": 0, "accuracy": 0.1}
    random_run = {**less, "method": "random"}

    def saved(runs, **extra):
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / "runs.json").write_text(json.dumps({"config": cfg.__dict__, "runs": runs, **extra}))
        return bench.resume()[0]

    assert saved([less], proxy_digest="aaaa") == [less]
    with pytest.raises(SelectgymError, match=r"another build of the proxy 'tiny' \(weights bbbb, here aaaa"):
        saved([less], proxy_digest="bbbb")
    assert saved([random_run], proxy_digest="bbbb") == [random_run]  # random reads no proxy: any build will do
    with caplog.at_level("WARNING"):
        assert saved([less]) == [less]  # saved before builds were recorded: kept, and said so
    assert "do not record its weights" in caplog.text


def test_bench_bar_counts_the_runs_left_and_can_be_silenced(tmp_path, monkeypatch, capsys):
    from selectgym.bench.harness import Bench

    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4, methods=["random", "full"],
                      seeds=[0, 1], budgets=[0.1])
    calls: list = []
    monkeypatch.setattr(Bench, "finetune", _fake_finetune(calls, die_after=3))
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, progress=False)
    assert "select + fine-tune" not in capsys.readouterr().err
    monkeypatch.setattr(Bench, "finetune", _fake_finetune(calls))
    run_bench(cfg)
    assert "select + fine-tune: 100%" in (err := capsys.readouterr().err) and "1/1" in err  # only the run left


def test_bench_split_target_scores_on_problems_the_selectors_never_saw(tmp_path, monkeypatch):
    from selectgym.bench.harness import Bench

    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=8, methods=["random"], seeds=[0],
                      budgets=[0.1], split_target=True)
    calls: list = []
    monkeypatch.setattr(Bench, "finetune", _fake_finetune(calls))
    run_bench(cfg)
    assert calls == [(4, 0, False, "target_eval.jsonl")]
    picked, scored = (load_pool(tmp_path / "b" / name) for name in ("target_select.jsonl", "target_eval.jsonl"))
    assert len(picked) == len(scored) == 4 and not set(picked.ids) & set(scored.ids)
    tasks = sorted({ex.meta["task"] for ex in load_pool(tmp_path / "b" / "suite" / "validation.jsonl")})
    assert len(tasks) == 2
    for half in (picked, scored):  # both halves hold every target family
        assert sorted({ex.meta["task"] for ex in half}) == tasks


def test_bench_balance_gives_the_target_subtasks_to_policy_less_and_nice_only(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from selectgym.bench import harness

    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=8, methods=["less", "random"],
                      seeds=[0], budgets=[0.1], split_target=True, balance_subtasks="task",
                      policy_path=str(tmp_path / "policy.zip"))
    (tmp_path / "policy.zip").write_bytes(b"a saved policy")
    bench = harness.Bench(cfg)
    bench.pools()
    seen = {}

    def fake_selector(name, **options):
        seen[name] = options
        return SimpleNamespace(select=lambda *args: SimpleNamespace(ids=["x"]))

    monkeypatch.setattr(harness, "get_selector", fake_selector)
    for method in ("policy", "less", "nice", "random", "gradalign:sim"):
        bench.select(method, 0.1, 0, None, None)
    tasks = [ex.meta["task"] for ex in load_pool(tmp_path / "b" / "target_select.jsonl")]  # the half they align with
    assert len(set(tasks)) == 2
    assert seen["less"] == seen["nice"] == {"balance": True, "subtasks": tasks}
    bench.select("less:gradient_type=sgd,loss_weight=1", 0.1, 0, None, None)  # a method's own options join them
    assert seen["less"] == {"gradient_type": "sgd", "loss_weight": 1, "balance": True, "subtasks": tasks}
    assert seen["policy"] == {"policy_path": tmp_path / "policy.zip", "subtasks": tasks}
    assert seen["random"] == {} and seen["gradalign"] == {"mode": "sim"}


def test_bench_missing_saved_policy_is_one_clear_error_before_any_work(tmp_path):
    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4, methods=["policy", "random"],
                      seeds=[0, 1], policy_path=str(tmp_path / "policy-s{seed}.zip"))
    with pytest.raises(SelectgymError, match=r"policy-s0.zip \(seed 0\) does not exist"):
        run_bench(cfg)
    assert not (tmp_path / "b" / "features").exists()


def test_resume_runs_a_replaced_saved_policy_again(tmp_path):
    from dataclasses import asdict

    from selectgym.bench.harness import Bench
    from selectgym.utils import file_digest, write_json

    policy = tmp_path / "policy-s0.zip"
    policy.write_bytes(b"first policy")
    cfg = BenchConfig(out=str(tmp_path / "b"), methods=["policy", "random"], seeds=[0],
                      policy_path=str(tmp_path / "policy-s{seed}.zip"))
    runs = [{"method": "policy", "budget": 0.05, "seed": 0, "policy_digest": file_digest(policy)},
            {"method": "random", "budget": 0.05, "seed": 0}]
    write_json(tmp_path / "b" / "runs.json", {"config": asdict(cfg), "runs": runs, "costs": {}, "failures": []})
    assert [r["method"] for r in Bench(cfg).resume()[0]] == ["policy", "random"]
    policy.write_bytes(b"retrained policy")
    assert [r["method"] for r in Bench(cfg).resume()[0]] == ["random"]


def test_a_method_names_its_selector_options():
    from selectgym.bench.config import method_options

    assert method_options("less") == ("less", {})
    assert method_options("gradalign:sim") == ("gradalign", {"mode": "sim"})
    assert method_options("less:gradient_type=sgd,loss_weight=1") == ("less", {"gradient_type": "sgd",
                                                                               "loss_weight": 1})
    assert BenchConfig(methods=["less:gradient_type=sgd,loss_weight=1", "less"]).methods[0].startswith("less:")
    # 1e-3 is a number (YAML 1.1 alone would leave it a string), and a list value keeps its commas
    assert method_options("less:loss_weight=1e-3,subtasks=[a, b]") == ("less", {"loss_weight": 0.001,
                                                                                "subtasks": ["a", "b"]})
    for method, error in [("less:loss_weight=abc", "loss_weight must be a finite number"),
                          ("less:lossweight=1", r"has no option\(s\) lossweight"),
                          ("less:=3", "takes KEY=VALUE"),
                          ("less:subtasks=a", "come\\(s\\) from balance_subtasks"),
                          ("full:x=1", "full takes no options"),
                          ("full:sim", "full takes no options"),
                          ("policy:", "nothing after it"),
                          ("less:sgd", "less has no modes; give its options as KEY=VALUE"),
                          ("less:loss_weight=1,loss_weight=2", "gives loss_weight twice"),
                          ("less:gradient_type=[a]", "gradient_type must be one of"),
                          ("gradalign:nope", "mode")]:
        with pytest.raises(SelectgymError, match=error):
            BenchConfig(methods=[method])
