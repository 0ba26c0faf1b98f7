"""The feature pipeline: config checks, warm-up, every train/val array against its direct computation, resume."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from selectgym.data.io import load_pool, save_pool
from selectgym.data.pool import Example
from selectgym.errors import SelectgymError
from selectgym.proxies import pipeline
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features import Feature, response_lengths
from selectgym.proxies.lora import lora_parameters
from selectgym.proxies.losses import sft_losses
from selectgym.proxies.pipeline import check_pools, compute_features, load_features, store_material
from selectgym.proxies.proxy import load_proxy, proxy_state, restore_proxy
from selectgym.proxies.store import FeatureStore, store_key
from selectgym.proxies.warmup import warmup, warmup_subset
from selectgym.utils import derive_seed

SMALL = {"model": "tiny", "proj_dim": 256, "max_length": 64, "batch_size": 4, "shard_size": 4, "warmup_steps": 2,
         "warmup_fraction": 0.5, "rollouts": 2, "max_new_tokens": 8, "seed": 0}


@pytest.fixture(scope="module")
def small_suite(suite_dir, tmp_path_factory):
    """sft/preference/verifiable pools of 10 examples and a validation set of 4, cut from ``suite_dir``."""
    out = tmp_path_factory.mktemp("small_suite")
    for name, n in (("sft", 10), ("preference", 10), ("verifiable", 10), ("validation", 4)):
        save_pool(out / f"{name}.jsonl", load_pool(suite_dir / f"{name}.jsonl")[:n])
    return out


def _proxy_of(store: FeatureStore, cfg: FeatureConfig):
    """The proxy exactly as the store saved it."""
    model, tok = load_proxy(cfg)
    optimizer = restore_proxy(model, store.load_proxy(), cfg.warmup_lr)
    return model, tok, optimizer


# -- config ------------------------------------------------------------------------------------------------

def test_config_defaults_and_round_trip():
    cfg = FeatureConfig()
    assert cfg.features == ["grad", "grad_adam", "loss", "length", "embedding"]
    assert FeatureConfig(gradient_type="sgd").features == ["grad", "loss", "length", "embedding"]
    assert FeatureConfig(**cfg.to_dict()) == cfg
    assert FeatureConfig(features=["loss", "loss", "grad"]).features == ["loss", "grad"]


@pytest.mark.parametrize("kwargs, message", [
    ({"features": ["grad", "gradz"]}, "unknown feature"),
    ({"features": []}, "features is empty"),
    ({"features": ["grad_adam"], "warmup_steps": 0}, "warmup_steps >= 1"),
    ({"projection": "gauss"}, "projection 'gauss' is unknown"),
    ({"features": ["nice"], "nice_policy": "topk", "nice_topk": 5, "rollouts": 4}, "lower nice_topk or raise rollouts"),
    ({"dpo_reduction": "max"}, "dpo_reduction 'max' is unknown"),
    ({"dpo_betta": 0.2}, "unknown setting"),
    ({"proj_dim": 0}, "proj_dim must be >= 1"),
    ({"rollout_backend": "openai"}, "needs base_url"),
])
def test_config_errors_say_how_to_fix(kwargs, message):
    with pytest.raises(SelectgymError, match=message):
        FeatureConfig(**kwargs)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "grpo", "a") == derive_seed(0, "grpo", "a")
    assert len({derive_seed(0, "grpo", "a"), derive_seed(0, "grpo", "b"), derive_seed(1, "grpo", "a")}) == 3
    assert 0 <= derive_seed(5, "x") < 2**31


# -- warm-up and cheap features ----------------------------------------------------------------------------

def test_warmup_subset_size_and_seed():
    rows = warmup_subset(100, 0.05, seed=3)
    assert len(rows) == 5 and len(set(rows)) == 5 and list(rows) == sorted(rows) and rows.max() < 100
    np.testing.assert_array_equal(rows, warmup_subset(100, 0.05, seed=3))
    assert warmup_subset(10, 0.01, seed=0).size == 1  # never empty
    with pytest.raises(SelectgymError, match="fraction"):
        warmup_subset(10, 0.0, seed=0)


@pytest.mark.slow
def test_warmup_is_deterministic_and_moves_only_the_adapter(small_suite):
    pool = load_pool(small_suite / "sft.jsonl")
    cfg = FeatureConfig(**SMALL)

    def run(seed):
        model, tok = load_proxy(cfg)
        base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
        lora0 = {n: p.detach().clone() for n, p in lora_parameters(model)}
        opt = warmup(model, tok, pool, steps=2, fraction=0.5, batch_size=4, max_length=64, seed=seed)
        assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "lora_" not in n)
        assert any(not torch.equal(p, lora0[n]) for n, p in lora_parameters(model))
        assert not model.training
        return {n: p.detach().clone() for n, p in lora_parameters(model)}, opt

    (a, opt_a), (b, _), (c, _) = run(0), run(0), run(1)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)
    assert all(int(s["step"]) == 2 for s in opt_a.state.values())


def test_proxy_state_round_trip(small_suite, tiny_lora, tokenizer):
    """Saved adapter + moments restore into a fresh proxy exactly (what resumed and other ranks use)."""
    from selectgym.proxies.gradients import adam_state

    opt = warmup(tiny_lora, tokenizer, load_pool(small_suite / "sft.jsonl"), steps=2, fraction=0.5, batch_size=4,
                 max_length=64, seed=0)
    model, _ = load_proxy(FeatureConfig(**SMALL))
    restored = restore_proxy(model, proxy_state(tiny_lora, opt), lr=2e-4)
    for (name, a), (_, b) in zip(lora_parameters(tiny_lora), lora_parameters(model), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(adam_state(tiny_lora, opt), adam_state(model, restored), strict=True):
        assert torch.equal(a, b) and a.abs().sum() > 0
    assert all(float(s["step"]) == 2 for s in restored.state.values())


def test_sft_losses_match_a_hand_loop(small_suite, tiny_lora, tokenizer):
    from selectgym.data.render import render_example

    examples = list(load_pool(small_suite / "sft.jsonl"))[:5]
    got = sft_losses(tiny_lora, tokenizer, examples, batch_size=2, max_length=64)
    for ex, value in zip(examples, got, strict=True):
        r = render_example(tokenizer, ex, 64)
        with torch.no_grad():
            logp = torch.log_softmax(tiny_lora(input_ids=torch.tensor([r.input_ids])).logits[0].float(), -1)
        nll = [-logp[t - 1, r.input_ids[t]].item() for t in range(1, len(r.input_ids)) if r.response_mask[t]]
        assert value == pytest.approx(sum(nll) / len(nll), rel=1e-4)


def test_response_lengths_count_target_tokens_and_eos(tokenizer):
    examples = [Example("a", [{"role": "user", "content": "q"}], response="hello world"),
                Example("b", [{"role": "user", "content": "q"}], response="")]
    want = [len(tokenizer("hello world", add_special_tokens=False)["input_ids"]) + 1, 1]
    np.testing.assert_array_equal(response_lengths(tokenizer, examples), want)


# -- the whole pipeline ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft_features(small_suite, tmp_path_factory):
    cfg = FeatureConfig(**SMALL, features=["grad", "grad_adam", "loss", "length", "embedding", "nice"])
    out = tmp_path_factory.mktemp("features")
    store = compute_features(small_suite / "sft.jsonl", small_suite / "validation.jsonl", cfg, out, progress=False)
    return store, cfg


@pytest.mark.slow
def test_sft_pool_arrays_and_shapes(sft_features, small_suite):
    store, cfg = sft_features
    train, val, again = load_features(store.path.parent)
    assert again.path == store.path and store.complete
    assert store.finished_shards("train") == [0, 1, 2]  # 10 examples in shards of 4
    assert train.ids == load_pool(small_suite / "sft.jsonl").ids
    assert train.schema() == {"embedding": [384], "grad": [256], "grad_adam": [256], "length": [], "loss": []}
    assert val.schema() == {"embedding": [384], "grad": [256], "pg_grad": [256]} and len(val) == 4
    for name in ("grad", "grad_adam", "pg_grad"):
        table = val if name == "pg_grad" else train
        assert np.abs(table.get(name)).sum(1).min() > 0
    meta = store.meta
    assert {"pool_path", "val_path", "pool_hash", "config", "model", "adapter"} <= set(meta)
    assert meta["config"] == cfg.to_dict() and meta["adapter"]["warmup_steps"] == 2
    assert train.meta["pool_hash"] == load_pool(small_suite / "sft.jsonl").content_hash


@pytest.mark.slow
def test_arrays_equal_their_direct_computation(sft_features, small_suite):
    """Each stored array equals the feature computed directly with the saved proxy (val grad is never Adam)."""
    from selectgym.proxies.embeddings import embed_examples
    from selectgym.proxies.gradients import adam_state, grad_dim, sft_grads
    from selectgym.proxies.projection import make_projector

    store, cfg = sft_features
    train, val, _ = load_features(store.path)
    pool, vpool = list(load_pool(small_suite / "sft.jsonl")), list(load_pool(small_suite / "validation.jsonl"))
    model, tok, opt = _proxy_of(store, cfg)
    proj = make_projector("sjlt", grad_dim(model), 256, seed=0)
    kw = {"projector": proj, "batch_size": 4, "max_length": 64}
    grad, loss = sft_grads(model, tok, pool, return_losses=True, **kw)
    np.testing.assert_allclose(train.get("grad"), grad, rtol=1e-4, atol=1e-5)
    adam = sft_grads(model, tok, pool, gradient_type="adam", optimizer_state=adam_state(model, opt), **kw)
    np.testing.assert_allclose(train.get("grad_adam"), adam, rtol=1e-4, atol=1e-4)
    assert not np.allclose(train.get("grad_adam"), train.get("grad"))
    np.testing.assert_allclose(train.get("loss"), loss, rtol=1e-5)
    np.testing.assert_allclose(train.get("loss"), sft_losses(model, tok, pool, max_length=64), rtol=1e-4)
    np.testing.assert_array_equal(train.get("length"), response_lengths(tok, pool))
    np.testing.assert_allclose(train.get("embedding"), embed_examples(pool), atol=1e-5)
    np.testing.assert_allclose(val.get("grad"), sft_grads(model, tok, vpool, **kw), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_preference_pool_dpo_gap(small_suite, tmp_path):
    from selectgym.proxies.dpo import dpo_reward_gaps

    cfg = FeatureConfig(**SMALL, features=["dpo_gap", "length"])
    store = compute_features(small_suite / "preference.jsonl", None, cfg, tmp_path, progress=False)
    train, val, _ = load_features(tmp_path)
    assert val is None and train.schema() == {"dpo_gap": [], "length": []}
    model, tok, _ = _proxy_of(store, cfg)
    want = dpo_reward_gaps(model, None, tok, list(load_pool(small_suite / "preference.jsonl")), beta=0.1,
                           batch_size=4, max_length=64)
    np.testing.assert_allclose(train.get("dpo_gap"), want, rtol=1e-4, atol=1e-6)
    assert np.abs(want).max() > 0  # the warmed-up adapter differs from the reference


@pytest.mark.slow
def test_verifiable_pool_grpo(small_suite, tmp_path):
    cfg = FeatureConfig(**SMALL, features=["grpo", "loss"])
    compute_features(small_suite / "verifiable.jsonl", small_suite / "validation.jsonl", cfg, tmp_path,
                     progress=False)
    train, val, _ = load_features(tmp_path)
    assert train.schema() == {"grpo_grad": [256], "grpo_signal": [], "loss": [], "pass_rate": []}
    assert val.schema() == {"grpo_grad": [256], "pass_rate": []}  # validation grad belongs to the SFT gradients
    signal = train.get("grpo_signal")
    assert set(np.unique(signal)) <= {0.0, 1.0}
    assert np.all(train.get("grpo_grad")[signal == 0] == 0)
    assert np.all((train.get("pass_rate") >= 0) & (train.get("pass_rate") <= 1))


# -- keys, resume, errors ----------------------------------------------------------------------------------

def test_key_changes_with_config_and_pool(small_suite):
    pool, val = load_pool(small_suite / "sft.jsonl"), load_pool(small_suite / "validation.jsonl")
    cfg = FeatureConfig(**SMALL)
    key = store_key(store_material(cfg, pool, val))
    assert key == store_key(store_material(FeatureConfig(**SMALL), pool, val))
    assert key != store_key(store_material(FeatureConfig(**{**SMALL, "proj_dim": 512}), pool, val))
    assert key != store_key(store_material(FeatureConfig(**{**SMALL, "lora_r": 4}), pool, val))
    assert key != store_key(store_material(cfg, pool[:9], val))
    assert key != store_key(store_material(cfg, pool, val[:3]))


def test_key_changes_with_the_weights_behind_one_model_path(small_suite, tmp_path, tokenizer):
    """Two builds of one model folder (``mini`` pretrained on two machines) must not share a store."""
    from selectgym.proxies.models import TinyConfig, tiny_model

    pool, val = load_pool(small_suite / "sft.jsonl"), load_pool(small_suite / "validation.jsonl")
    cfg = FeatureConfig(**{**SMALL, "model": str(tmp_path)})
    tiny_model(tokenizer, TinyConfig(seed=1)).save_pretrained(tmp_path)
    key = store_key(store_material(cfg, pool, val))
    tiny_model(tokenizer, TinyConfig(seed=2)).save_pretrained(tmp_path)
    assert store_key(store_material(cfg, pool, val)) != key


@pytest.mark.slow
def test_resume_after_a_crash_equals_a_clean_run(small_suite, tmp_path, monkeypatch):
    cfg = FeatureConfig(**SMALL, features=["grad", "loss", "length"])
    pool, val = small_suite / "sft.jsonl", small_suite / "validation.jsonl"
    real = pipeline.train_shard
    calls = []

    def crash_on_second(proxy, examples):
        calls.append(examples[0].id)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(proxy, examples)

    monkeypatch.setattr(pipeline, "train_shard", crash_on_second)
    with pytest.raises(RuntimeError, match="killed"):
        compute_features(pool, val, cfg, tmp_path / "a", progress=False)
    store = FeatureStore.open(tmp_path / "a")
    assert store.finished_shards("train") == [0] and not store.complete
    first = store.path / "train" / "shard-00000.safetensors"
    before = (first.read_bytes(), os.stat(first).st_mtime_ns)
    proxy_before = store.proxy_path.read_bytes()

    monkeypatch.setattr(pipeline, "train_shard", real)
    resumed = compute_features(pool, val, cfg, tmp_path / "a", progress=False)
    assert resumed.last_run == {"computed": 6 + 4, "reused": 4}
    assert (first.read_bytes(), os.stat(first).st_mtime_ns) == before
    assert store.proxy_path.read_bytes() == proxy_before  # the warm-up is not redone
    clean = compute_features(pool, val, cfg, tmp_path / "b", progress=False)
    for name in ("train", "val"):
        got, want = resumed.table(name), clean.table(name)
        assert got.ids == want.ids
        for key in want.arrays:
            np.testing.assert_allclose(got.get(key), want.get(key), rtol=1e-5, atol=1e-6)
    assert compute_features(pool, val, cfg, tmp_path / "b", progress=False).last_run["computed"] == 0


def test_pool_errors(small_suite, tmp_path):
    sft, pref, val = (load_pool(small_suite / f"{n}.jsonl") for n in ("sft", "preference", "validation"))
    with pytest.raises(SelectgymError, match="dpo_gap needs a preference pool"):
        check_pools(FeatureConfig(**SMALL, features=["dpo_gap"]), sft, val)
    check_pools(FeatureConfig(**SMALL, features=["dpo_gap"]), pref, None)
    with pytest.raises(SelectgymError, match="grpo with the verifier reward needs problems with an answer"):
        check_pools(FeatureConfig(**SMALL, features=["grpo"]), sft, val)
    with pytest.raises(SelectgymError, match="nice computes validation policy gradients"):
        check_pools(FeatureConfig(**SMALL, features=["nice"]), sft, None)
    with pytest.raises(SelectgymError, match="the pool is empty"):
        check_pools(FeatureConfig(**SMALL), sft[:0], val)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SelectgymError, match="no records"):
        compute_features(empty, None, FeatureConfig(**SMALL), tmp_path / "f", progress=False)
    with pytest.raises(SelectgymError, match="dpo_gap needs a preference pool"):
        compute_features(small_suite / "sft.jsonl", None, FeatureConfig(**SMALL, features=["dpo_gap"]),
                         tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()  # nothing written before the checks


def test_nan_feature_names_the_example(small_suite, tmp_path, monkeypatch):
    from selectgym.proxies import proxy

    real = proxy.load_proxy

    def broken_proxy(cfg):
        model, tok = real(cfg)
        with torch.no_grad():
            next(p for n, p in model.named_parameters() if "norm" in n).fill_(float("nan"))
        return model, tok

    monkeypatch.setattr(proxy, "load_proxy", broken_proxy)
    cfg = FeatureConfig(**{**SMALL, "warmup_steps": 0}, features=["loss"])
    first = load_pool(small_suite / "sft.jsonl").ids[0]
    with pytest.raises(SelectgymError, match=rf"'loss' is not finite .* example '{first}'"):
        compute_features(small_suite / "sft.jsonl", None, cfg, tmp_path, progress=False)


# -- LESS's checkpoint schedule ----------------------------------------------------------------------------

def test_less_schedule_feeds_the_multi_checkpoint_score(small_suite, tmp_path):
    """warmup_epochs: gradients at every epoch's checkpoint, weighted by the epoch's mean LR in the LESS score."""
    from selectgym.proxies.gradients import adam_state, grad_dim, sft_grads
    from selectgym.proxies.projection import make_projector
    from selectgym.selectors import get_selector

    cfg = FeatureConfig(**{**SMALL, "warmup_epochs": 2, "warmup_fraction": 1.0, "features": ["grad", "grad_adam",
                                                                                                "loss"]})
    store = compute_features(small_suite / "sft.jsonl", small_suite / "validation.jsonl", cfg, tmp_path,
                             progress=False)
    train, val, _ = load_features(tmp_path)
    lrs = train.meta["checkpoints"]
    # 10 examples in batches of 4: 3 steps an epoch, 6 in all, 1 warm-up step, then linear decay to 0:
    # LR factors 0, 1, .8 | .6, .4, .2 -> epoch means .6 and .4 of warmup_lr
    assert list(lrs) == ["1", "2"]
    assert lrs["1"] == pytest.approx(0.6 * cfg.warmup_lr) and lrs["2"] == pytest.approx(0.4 * cfg.warmup_lr)
    assert {"grad@1", "grad@2", "grad_adam@1", "grad_adam@2", "grad", "grad_adam", "loss"} <= set(train.arrays)
    assert {"grad@1", "grad@2", "grad"} <= set(val.arrays)
    np.testing.assert_array_equal(train.get("grad_adam"), train.get("grad_adam@2"))
    assert not np.allclose(train.get("grad_adam@1"), train.get("grad_adam@2"))

    # checkpoint 1 recomputed by hand from the saved state
    saved = store.load_proxy()
    model, tok = load_proxy(cfg)
    opt = restore_proxy(model, {k[2:]: v for k, v in saved.items() if k.startswith("1/")}, cfg.warmup_lr)
    projector = make_projector(cfg.projection, grad_dim(model), cfg.proj_dim, seed=cfg.seed)
    pool = list(load_pool(small_suite / "sft.jsonl"))
    np.testing.assert_allclose(train.get("grad@1"), sft_grads(model, tok, pool, projector=projector, batch_size=4,
                                                              max_length=64), rtol=1e-4, atol=1e-5)
    adam = sft_grads(model, tok, pool, projector=projector, batch_size=4, max_length=64, gradient_type="adam",
                     optimizer_state=adam_state(model, opt))
    np.testing.assert_allclose(train.get("grad_adam@1"), adam, rtol=1e-4, atol=1e-5)

    # the LESS score is the LR-weighted sum of the per-checkpoint mean cosines
    def mean_cos(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return (a @ b.T).mean(axis=1)

    w1, w2 = lrs["1"] / (lrs["1"] + lrs["2"]), lrs["2"] / (lrs["1"] + lrs["2"])
    expected = w1 * mean_cos(train.get("grad_adam@1"), val.get("grad@1")) + \
        w2 * mean_cos(train.get("grad_adam@2"), val.get("grad@2"))
    selection = get_selector("less").select(train, val, 10, seed=0)
    np.testing.assert_allclose(selection.pool_scores, expected, rtol=1e-4, atol=1e-6)
    single = mean_cos(train.get("grad_adam@2"), val.get("grad@2"))
    assert not np.allclose(expected, single, atol=1e-4)


# -- the feature registry ----------------------------------------------------------------------------------

@dataclass
class ResponseChars(Feature):
    """A feature written as one class: characters of each response (train) and of each reference (val)."""

    name = "chars"
    help = "response characters"
    train_arrays = ("chars",)
    val_arrays = ("chars",)

    def train(self, proxy, examples, cache):
        return {"chars": np.array([len(ex.target) for ex in examples], dtype=np.float32)}

    def val(self, proxy, examples, cache):
        return self.train(proxy, examples, cache)


def test_a_new_feature_is_one_class_in_the_registry(small_suite, tmp_path, monkeypatch):
    from selectgym.proxies.features import FEATURES, register_feature

    monkeypatch.setattr(FEATURES, "_entries", dict(FEATURES._entries))  # the registry has no removal: restore it
    register_feature(ResponseChars)
    cfg = FeatureConfig(**{**SMALL, "warmup_steps": 0}, features=["chars", "length"])
    compute_features(small_suite / "sft.jsonl", small_suite / "validation.jsonl", cfg, tmp_path, progress=False)
    train, val, _ = load_features(tmp_path)
    pool = load_pool(small_suite / "sft.jsonl")
    np.testing.assert_array_equal(train.get("chars"), [len(ex.target) for ex in pool])
    assert val.has("chars") and not val.has("grad") and train.has("length")  # grad is written by its features only
    with pytest.raises(SelectgymError, match="unknown feature"):
        FeatureConfig(features=["chars2"])
    # ... and the selection env observes it by name
    import gymnasium as gym

    import selectgym.envs  # noqa: F401  (registers the selectgym/ ids)

    env = gym.make("selectgym/FeatureSelect-v0", table=train, val_table=val, budget=4, n_clusters=2, batch_size=2,
                   features=["chars", "length"], reward="none", order_by="chars",
                   labels=np.arange(len(train)) % 2).unwrapped
    obs, _ = env.reset(seed=0)
    assert env.observation_schema()["features"] == ["length", "chars"] and env.observation_space.contains(obs)


def test_float16_gradient_storage_from_the_config(small_suite, tmp_path):
    cfg = FeatureConfig(**SMALL, features=["grad", "loss"])
    half = FeatureConfig(**{**SMALL, "grad_dtype": "float16"}, features=["grad", "loss"])
    full = compute_features(small_suite / "sft.jsonl", None, cfg, tmp_path / "a", progress=False)
    small = compute_features(small_suite / "sft.jsonl", None, half, tmp_path / "b", progress=False)
    assert small.grad_dtype == "float16" and full.grad_dtype == "float32"
    a, b = np.asarray(full.table("train").get("grad")), np.asarray(small.table("train").get("grad"))
    assert b.dtype == np.float16
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b.astype(np.float32), axis=1)
    assert cos.min() > 0.9999
