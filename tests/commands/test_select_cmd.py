import json

import numpy as np
import pytest

from selectgym.budget import parse_budget
from selectgym.cli import main
from selectgym.data import load_pool
from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.table import FeatureTable
from selectgym.registry import parse_options
from selectgym.selectors import Selection


def write_store(root, pool_path, train: FeatureTable, val: FeatureTable | None = None, **meta):
    """A complete feature store on disk, as `selectgym features` leaves it."""
    store = FeatureStore.create(root, {"test": str(root)}, {"pool_path": str(pool_path), **meta})
    store.write_shard("train", 0, train.ids, train.arrays)
    shards = {"train": 1}
    if val is not None:
        store.write_shard("val", 0, val.ids, val.arrays)
        shards["val"] = 1
    store.mark_complete(shards)
    return root


@pytest.fixture()
def labelled(suite_dir):
    """Features on the suite's SFT pool: dpo_gap is -1 for clean on-target examples, +1 for the rest."""
    pool = load_pool(suite_dir / "sft.jsonl")
    useful = np.array([bool(ex.meta["useful"]) for ex in pool])
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(len(pool), 4))
    grads[useful, 0] += 5.0
    n = len(pool)
    train = FeatureTable(pool.ids, {"dpo_gap": np.where(useful, -1.0, 1.0) + 0.01 * np.arange(n),
                                    "grad_adam": grads, "grad": grads, "pass_rate": np.linspace(0, 1, n),
                                    "grpo_grad": np.zeros((n, 4)), "grpo_signal": np.zeros(n)})
    val = FeatureTable(["v0", "v1"], {"grad": np.array([[1.0, 0, 0, 0], [1.0, 0.1, 0, 0]])})
    return pool, useful, train, val


@pytest.fixture()
def features(tmp_path, suite_dir, labelled):
    pool, useful, train, val = labelled
    return write_store(tmp_path / "feats", suite_dir / "sft.jsonl", train, val), pool, useful


def test_select_writes_pool_format_scores_and_label_summary(features, tmp_path, capsys):
    folder, pool, useful = features
    out = tmp_path / "sel" / "chosen.jsonl"
    assert main(["select", "--method", "dpo_gap", "--features", str(folder), "--budget", "10", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10
    assert all("instruction" in r and "output" in r and r["meta"]["useful"] for r in records)
    # smallest gaps first: useful examples in pool order (the +0.01*i offset breaks ties)
    assert [r["id"] for r in records] == [i for i, u in zip(pool.ids, useful, strict=True) if u][:10]
    rows = [json.loads(line) for line in (tmp_path / "sel" / "chosen.scores.jsonl").read_text().splitlines()]
    assert len(rows) == len(pool) and [r["rank"] for r in rows] == list(range(1, len(pool) + 1))
    assert [r["id"] for r in rows[:10]] == [r["id"] for r in records] and all(r["selected"] for r in rows[:10])
    assert not any(r["selected"] for r in rows[10:])
    assert all(a["score"] >= b["score"] for a, b in zip(rows[10:], rows[11:], strict=False))
    text = capsys.readouterr().out
    assert f"selected 10 of {len(pool)} examples with dpo_gap" in text
    assert f"10/10 clean and on-target (100.0%) vs {100 * useful.mean():.1f}% in the pool" in text


def test_select_uses_method_default_budget_and_options(features, tmp_path, capsys):
    folder, pool, useful = features
    out = tmp_path / "less.jsonl"
    assert main(["select", "--method", "less", "--features", str(folder), "--out", str(out),
                 "--option", "gradient_type=sgd", "--seed", "3"]) == 0
    chosen = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(chosen) == round(0.05 * len(pool))
    by_id = {ex.id: ex for ex in pool}
    assert sum(by_id[i].meta["useful"] for i in chosen) >= 0.8 * len(chosen)
    assert "clean and on-target" in capsys.readouterr().out
    assert main(["select", "--method", "dpo_gap", "--features", str(folder), "--out", str(out), "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == round(0.1 * len(pool))


def test_select_gradalign_rounds_from_yaml_config(features, tmp_path, capsys):
    folder, pool, useful = features
    cfg = tmp_path / "sel.yaml"
    cfg.write_text(f"method: gradalign\nfeatures: {folder}\nbudget: 0.1\nout: {tmp_path / 'g.jsonl'}\n"
                   "option: [mode=accgreedy, chunk_size=40]\n")
    assert main(["select", "--config", str(cfg)]) == 0
    assert "3 selection rounds of up to 40 candidates" in capsys.readouterr().out
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 12


def test_user_errors_are_one_line(features, tmp_path, capsys):
    folder, _, _ = features
    cases = [
        (["--method", "nope", "--features", str(folder)], "unknown selector 'nope'"),
        (["--features", str(folder)], "exactly one of --method"),
        (["--method", "less"], "--method needs --features"),
        (["--method", "less", "--features", str(tmp_path / "missing")], "no such feature folder"),
        (["--method", "less", "--features", str(folder), "--budget", "lots"], "--budget must be"),
        (["--method", "less", "--features", str(folder), "--budget", "0"], "budget must be"),
        (["--method", "less", "--features", str(folder), "--option", "mode"], "KEY=VALUE"),
        (["--method", "less", "--features", str(folder), "--option", "q=3"], "has no option(s) q"),
        (["--method", "nice", "--features", str(folder)], "no 'pg_grad'"),
        (["--method", "less", "--features", str(folder), "--out", str(tmp_path / "x.json")], "ending in .jsonl"),
        (["--method", "less", "--features", str(folder), "--pool", str(tmp_path / "none.jsonl")], "not found"),
        (["--policy", "p.zip"], "--policy needs --pool"),
        (["--method", "policy", "--features", str(folder)], "use --policy FILE.zip"),
        (["--method", "less", "--features", str(folder), "--budget", "1.0"], "budget 1.0 is ambiguous"),
    ]
    for argv, message in cases:
        assert main(["select", *argv, "--out", str(tmp_path / "o.jsonl")] if "--out" not in argv
                    else ["select", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)


def test_missing_validation_table_is_a_clear_error(labelled, suite_dir, tmp_path, capsys):
    folder = write_store(tmp_path / "no_val", suite_dir / "sft.jsonl", labelled[2])
    assert main(["select", "--method", "less", "--features", str(folder), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "needs target (validation) features" in capsys.readouterr().err


def test_policy_path_goes_through_the_policy_selector(monkeypatch, suite_dir, tmp_path, capsys):
    pool = load_pool(suite_dir / "sft.jsonl")
    calls = {}
    table = FeatureTable(pool.ids, {"loss": np.zeros(len(pool))})

    def policy_features(policy_path, pool_path, val_path, features_dir, pool_check=None):
        calls.update(policy=policy_path, pool=pool_path, val=val_path, feats=features_dir)
        return table, None, {"path": "cache", "computed": True, "cached": True, "megabytes": 12.0}

    def select(self, train, val, budget, seed):
        calls.update(selector=str(self.policy_path), budget=budget, seed=seed, rows=len(train))
        return Selection(pool.ids[-3:], np.array([3.0, 2.0, 1.0]), "policy")

    monkeypatch.setattr("selectgym.agents.apply.policy_features", policy_features)
    monkeypatch.setattr("selectgym.agents.selector.PolicySelector.select", select)
    out = tmp_path / "p.jsonl"
    assert main(["select", "--policy", "pol.zip", "--pool", str(suite_dir / "sft.jsonl"), "--budget", "0.2",
                 "--val", "v.jsonl", "--seed", "4", "--out", str(out)]) == 0
    assert calls == {"policy": "pol.zip", "pool": str(suite_dir / "sft.jsonl"), "val": "v.jsonl", "feats": None,
                     "selector": "pol.zip", "budget": 0.2, "seed": 4, "rows": len(pool)}
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == pool.ids[-3:]
    rows = [json.loads(line) for line in (tmp_path / "p.scores.jsonl").read_text().splitlines()]
    assert [(r["rank"], r["score"]) for r in rows] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    printed = capsys.readouterr().out
    assert "selected 3 of" in printed and "features for the policy are cached in cache (12 MB" in printed


def test_parsers():
    assert parse_budget("0.05") == 0.05 and parse_budget("40") == 40 and parse_budget(None) is None
    assert parse_budget(0.1) == 0.1
    assert parse_options(["mode=sim", "q=4", "subtasks=[a, b]", "gradient-type=sgd"]) == {
        "mode": "sim", "q": 4, "subtasks": ["a", "b"], "gradient_type": "sgd"}
    with pytest.raises(SelectgymError):
        parse_options(["=3"])


def test_a_pool_edited_after_its_features_is_refused(labelled, suite_dir, tmp_path, capsys):
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text((suite_dir / "sft.jsonl").read_text())
    _, _, train, val = labelled
    folder = write_store(tmp_path / "f", pool_file, train, val, pool_hash=load_pool(pool_file).content_hash)
    argv = ["select", "--method", "less", "--features", str(folder), "--out", str(tmp_path / "o.jsonl"), "--overwrite"]
    assert main(argv) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in pool_file.read_text().splitlines()]
    records[3]["output"] = records[3]["output"] + " (edited)"
    pool_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pool {pool_file} has changed since its features" in err and err.count("\n") == 1


def test_nice_says_how_many_prompts_fell_back(labelled, suite_dir, tmp_path, capsys):
    _, _, train, val = labelled
    val = FeatureTable(val.ids, {**val.arrays, "pg_grad": val.get("grad")})
    folder = write_store(tmp_path / "f", suite_dir / "sft.jsonl", train, val,
                         nice={"prompts": 2, "fallback": 2, "mean_reward": 0.0, "samples": 4})
    assert main(["select", "--method", "nice", "--features", str(folder), "--out", str(tmp_path / "o.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "NICE: 2 of 2 validation prompts fell back to the reference answer" in out
    assert "WARNING: every prompt did, so NICE equals LESS here" in out


def test_a_policy_reads_a_given_store_without_rewriting_it(features, suite_dir, monkeypatch):
    from selectgym.agents.apply import features_for

    folder, pool, _ = features
    (folder / "latest.json").write_text('{"key": "kept"}')
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    monkeypatch.setattr("selectgym.agents.apply.compute_features",
                        lambda *a, **k: pytest.fail("features were recomputed into the given folder"))
    train, val, source = features_for(None, suite_dir / "sft.jsonl", None, folder, suite_dir / "sft.jsonl")
    assert train.ids == pool.ids and val is not None and source["computed"] is False
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_balance_subtasks_shares_the_budget_among_the_target_tasks(labelled, suite_dir, tmp_path, capsys):
    pool, _, train, _ = labelled  # "sum" points where the useful examples do, "other" along an axis none favours
    folder = write_store(tmp_path / "feats", suite_dir / "sft.jsonl", train,
                         FeatureTable([f"v{j}" for j in range(4)],
                                      {"grad": np.array([[1.0, 0, 0, 0]] * 3 + [[0, 0, 1.0, 0]])}))
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"id": f"v{j}", "question": "1+1?", "answer": "2", "task": t}) + "\n"
                           for j, t in enumerate(["sum"] * 3 + ["other"])))
    plain, balanced = tmp_path / "plain.jsonl", tmp_path / "balanced.jsonl"
    base = ["select", "--method", "less", "--features", str(folder), "--budget", "10", "--val", str(val)]
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--out", str(balanced), "--balance-subtasks", "task"]) == 0
    by_id = {ex.id: ex for ex in pool}

    def useful_count(path):
        return sum(by_id[json.loads(line)["id"]].meta["useful"] for line in path.read_text().splitlines())

    assert useful_count(plain) == 10
    assert 7 <= useful_count(balanced) <= 8  # "other" has a quarter of the target: 2 of the 10 picks
    capsys.readouterr()
    assert main([*base[:2], "dpo_gap", *base[3:], "--balance-subtasks", "task", "--out", str(plain),
                 "--overwrite"]) == 2
    assert "--balance-subtasks works with --method less or nice" in capsys.readouterr().err
    assert main([*base, "--balance-subtasks", "family", "--out", str(plain), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "has no 'family'" in err and len(err.strip().splitlines()) == 1
