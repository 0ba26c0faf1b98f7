"""The built-in task suite: reasoning-gym problems with controlled defects and ground-truth labels.

A few task families are the *target* (the validation set comes from them); others are off-target.
A share of the pool gets a defect (wrong answer, truncated or garbled response, duplicate). Every
record carries ``meta.clean``, ``meta.on_target`` and ``meta.defect``, which is how selectors are
measured. Everything is drawn from one seed: same seed, same files.

Two opt-in defects give the RL pools their own regimes (off by default, so the default files stay as they
were): ``noisy_answer_share`` gives prompts of the verifiable pool a wrong reference answer, so the verifier's
reward on them is noise (``meta.noisy_reward``), and ``pair_defect_share`` makes preference pairs swapped or
near-identical (``meta.pair_defect``). Those labels too are for measuring only.
"""

from __future__ import annotations

import logging
import random
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.utils import stable_hash, write_json, write_jsonl

log = logging.getLogger(__name__)

DEFAULT_TARGET = {
    "basic_arithmetic": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
    "chain_sum": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
}
DEFAULT_OFF_TARGET = {
    "spell_backward": {},
    "letter_counting": {},
    "gcd": {},
    "count_bits": {},
}
DEFECTS = ("wrong_answer", "truncated", "garbled", "duplicate")


@dataclass
class SuiteConfig:
    """How the built-in suite is drawn."""

    seed: int = field(default=0, metadata={"help": "seed for every random choice"})
    size: int = field(default=800, metadata={"help": "examples in the training pool (defects included)"})
    validation_size: int = field(default=64, metadata={
        "help": "clean target-family problems held out as the validation/target set"})
    target_share: float = field(default=0.35, metadata={"help": "share of the pool from the target families"})
    defect_rate: float = field(default=0.3, metadata={
        "help": "share of the pool given a defect, spread evenly over wrong_answer, truncated, garbled, duplicate"})
    target_tasks: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_TARGET), metadata={
        "help": "target reasoning-gym families and their generator settings (YAML mapping)"})
    off_target_tasks: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_OFF_TARGET), metadata={
        "help": "off-target families and their generator settings (YAML mapping)"})
    noisy_answer_share: float = field(default=0.0, metadata={
        "help": "share of the verifiable pool whose reference answer is made wrong (noisy verifier reward; "
                "labelled meta.noisy_reward); drawn from prompts whose answer is right"})
    pair_defect_share: float = field(default=0.0, metadata={
        "help": "share of the preference pool made defective, half swapped (chosen and rejected exchanged), half "
                "near-identical (rejected = chosen with one character changed); labelled meta.pair_defect; drawn "
                "from pairs whose chosen reply is right"})

    def __post_init__(self) -> None:
        if self.size < 1 or self.validation_size < 1:
            raise SelectgymError(f"suite size and validation_size must be >= 1 "
                                 f"(got {self.size}, {self.validation_size})")
        for name, value in (("target_share", self.target_share), ("defect_rate", self.defect_rate),
                            ("noisy_answer_share", self.noisy_answer_share),
                            ("pair_defect_share", self.pair_defect_share)):
            if not 0.0 <= value <= 1.0:
                raise SelectgymError(f"{name} must lie in [0, 1], got {value}")
        if not self.target_tasks or not self.off_target_tasks:
            raise SelectgymError("the suite needs at least one target and one off-target task family")


def _problems(task: str, kwargs: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    import reasoning_gym as rg

    try:
        ds = rg.create_dataset(task, size=max(n, 1), seed=seed, **kwargs)
    except Exception as err:  # reasoning-gym raises several types for a bad name or config
        raise SelectgymError(f"reasoning-gym task {task!r} could not be built: {err}") from None
    out = []
    for entry in list(ds)[:n]:
        entry = {"question": entry["question"], "answer": str(entry["answer"]), "metadata": entry["metadata"]}
        out.append(_jsonable(entry))
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _wrong(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: a nearby number for numeric answers, a changed string otherwise."""
    try:
        value = int(answer)
        return str(value + rng.choice([-3, -2, -1, 1, 2, 3, 10]))
    except ValueError:
        pass
    if len(answer) > 1:
        chars = list(answer)
        i, j = rng.sample(range(len(chars)), 2)
        chars[i], chars[j] = chars[j], chars[i]
        wrong = "".join(chars)
        if wrong != answer:
            return wrong
    return answer + rng.choice(string.ascii_lowercase)


def wrong_answer_pairs(pool: Pool, seed: int) -> Pool:
    """Preference pairs made from problems with a reference answer: chosen = the answer, rejected = a wrong one
    (``_wrong``, seeded), so a DPO-trained policy can be scored on problems it never trained on."""
    rng = random.Random(seed)
    missing = [ex.id for ex in pool if not (ex.answer or "").strip()]
    if missing:
        raise SelectgymError(f"{pool.source}: {len(missing)} examples have no reference answer to make a preference "
                             f"pair from (first: {missing[0]!r}); use a verifiable file (prompt + answer)")
    return Pool(tuple(Example(ex.id, ex.prompt, chosen=ex.answer, rejected=_wrong(ex.answer, rng), meta=ex.meta)
                      for ex in pool), "preference", pool.source)


def _one_char_change(text: str, rng: random.Random) -> str:
    """``text`` with one character replaced by another (one appended to an empty text)."""
    alphabet = string.ascii_lowercase + string.digits
    if not text:
        return rng.choice(alphabet)
    i = rng.randrange(len(text))
    return text[:i] + rng.choice([c for c in alphabet if c != text[i]]) + text[i + 1:]


def _split_counts(total: int, weights: dict[str, Any]) -> dict[str, int]:
    names = list(weights)
    base = [total // len(names)] * len(names)
    for i in range(total - sum(base)):
        base[i] += 1
    return dict(zip(names, base, strict=True))


def build_suite(cfg: SuiteConfig) -> dict[str, list[dict[str, Any]]]:
    """Draw the suite in memory: ``{"sft", "preference", "verifiable", "validation"}`` record lists."""
    rng = random.Random(cfg.seed)
    n_target = round(cfg.size * cfg.target_share)
    n_dup = round(cfg.size * cfg.defect_rate / len(DEFECTS))
    n_fresh = cfg.size - n_dup
    n_target_fresh = min(n_target, n_fresh)
    counts = {**_split_counts(n_target_fresh, cfg.target_tasks),
              **_split_counts(n_fresh - n_target_fresh, cfg.off_target_tasks)}
    val_counts = _split_counts(cfg.validation_size, cfg.target_tasks)

    items: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    for t_i, (task, kwargs) in enumerate({**cfg.target_tasks, **cfg.off_target_tasks}.items()):
        on_target = task in cfg.target_tasks
        extra = val_counts.get(task, 0)
        problems = _problems(task, kwargs, counts[task] + extra, seed=cfg.seed * 1000 + t_i)
        for p in problems[counts[task]:]:
            validation.append({"task": task, "entry": p, "on_target": True})
        for p in problems[:counts[task]]:
            items.append({"task": task, "entry": p, "on_target": on_target})
    rng.shuffle(items)

    n_other = round(cfg.size * cfg.defect_rate) - n_dup
    defect_of: dict[int, str] = {}
    kinds = [d for d in DEFECTS if d != "duplicate"]
    for k, idx in enumerate(rng.sample(range(len(items)), min(n_other, len(items)))):
        defect_of[idx] = kinds[k % len(kinds)]
    clean_idx = [i for i in range(len(items)) if i not in defect_of]
    dup_sources = [rng.choice(clean_idx) for _ in range(n_dup)] if clean_idx else []

    sft, pref, verif = [], [], []

    def emit(item: dict[str, Any], defect: str | None, key: str) -> None:
        entry = item["entry"]
        answer = entry["answer"]
        response, chosen, rejected = answer, answer, _wrong(answer, rng)
        if defect == "wrong_answer":
            response = _wrong(answer, rng)
            chosen, rejected = rejected, chosen
        elif defect == "truncated":
            response = answer[: len(answer) // 2]
            chosen = response
        elif defect == "garbled":
            alphabet = string.ascii_letters + string.digits + "#@!"
            response = "".join(rng.choice(alphabet) for _ in range(max(3, len(answer))))
            chosen = response
        clean = defect is None
        meta = {"task": item["task"], "on_target": item["on_target"], "clean": clean,
                "defect": defect or "none", "useful": clean and item["on_target"]}
        rid = f"{item['task']}-{key}"
        sft.append({"id": rid, "instruction": entry["question"], "output": response, "meta": meta})
        pref.append({"id": rid, "prompt": entry["question"], "chosen": chosen, "rejected": rejected, "meta": meta})
        verif_answer = response if defect in ("wrong_answer", "truncated", "garbled") else answer
        verif.append({"id": rid, "prompt": entry["question"], "answer": verif_answer,
                      "meta": {**meta, "entry": {**entry, "answer": verif_answer}}})

    for i, item in enumerate(items):
        emit(item, defect_of.get(i), f"{i:05d}")
    for j, src in enumerate(dup_sources):
        emit(items[src], "duplicate", f"{len(items) + j:05d}")

    val = [{"id": f"val-{v['task']}-{i:04d}", "prompt": v["entry"]["question"], "answer": v["entry"]["answer"],
            "solution": v["entry"]["answer"],
            "meta": {"task": v["task"], "on_target": True, "clean": True, "defect": "none", "useful": True,
                     "entry": v["entry"]}}
           for i, v in enumerate(validation)]
    if cfg.noisy_answer_share > 0:
        _noisy_answers(verif, sft, cfg)
    if cfg.pair_defect_share > 0:
        _pair_defects(pref, sft, cfg)
    return {"sft": sft, "preference": pref, "verifiable": verif, "validation": val}


def _right(sft_record: dict[str, Any]) -> bool:
    """Whether the example's answer is right (clean, or a duplicate of a clean one)."""
    return sft_record["meta"]["defect"] in ("none", "duplicate")


def _noisy_answers(verif: list[dict[str, Any]], sft: list[dict[str, Any]], cfg: SuiteConfig) -> None:
    """Give a seeded share of the verifiable prompts with a right answer a wrong one; label every prompt.

    Its own generator, after everything else is drawn, so the rest of the suite is what it is without it."""
    rng = random.Random(f"noisy-answers-{cfg.seed}")
    right = [i for i, r in enumerate(sft) if _right(r)]
    noisy = set(rng.sample(right, min(round(cfg.noisy_answer_share * len(verif)), len(right))))
    for i, rec in enumerate(verif):
        meta = {**rec["meta"], "noisy_reward": i in noisy}
        if i in noisy:
            rec["answer"] = _wrong(rec["answer"], rng)
            meta["entry"] = {**meta["entry"], "answer": rec["answer"]}
        rec["meta"] = meta


def _pair_defects(pref: list[dict[str, Any]], sft: list[dict[str, Any]], cfg: SuiteConfig) -> None:
    """Make a seeded share of the right preference pairs defective, half swapped, half near-identical; label
    every pair (its own generator, as ``_noisy_answers``)."""
    rng = random.Random(f"pair-defects-{cfg.seed}")
    right = [i for i, r in enumerate(sft) if _right(r)]
    picked = rng.sample(right, min(round(cfg.pair_defect_share * len(pref)), len(right)))
    kind = {i: "swapped" if k % 2 == 0 else "near_identical" for k, i in enumerate(picked)}
    for i, rec in enumerate(pref):
        if kind.get(i) == "swapped":
            rec["chosen"], rec["rejected"] = rec["rejected"], rec["chosen"]
        elif kind.get(i) == "near_identical":
            rec["rejected"] = _one_char_change(rec["chosen"], rng)
        rec["meta"] = {**rec["meta"], "pair_defect": kind.get(i)}  # a copy: the sft record shares this dict


def make_suite(out_dir: str | Path, cfg: SuiteConfig | None = None) -> dict[str, Path]:
    """Write the suite's pool files and a manifest into ``out_dir``; returns their paths."""
    cfg = cfg or SuiteConfig()
    suite = build_suite(cfg)
    out = Path(out_dir)
    paths = {name: write_jsonl(out / f"{name}.jsonl", recs) for name, recs in suite.items()}
    labels = suite["sft"]
    config = asdict(cfg)
    for name in ("noisy_answer_share", "pair_defect_share"):  # opt-in: left out when off, as before they existed
        if not config[name]:
            del config[name]
    manifest = {
        "config": config,
        "files": {k: p.name for k, p in paths.items()},
        "counts": {k: len(v) for k, v in suite.items()},
        "useful": sum(r["meta"]["useful"] for r in labels),
        "defects": {d: sum(r["meta"]["defect"] == d for r in labels) for d in ("none", *DEFECTS)},
        "hash": stable_hash(suite),
    }
    if cfg.noisy_answer_share:
        manifest["noisy_reward"] = sum(r["meta"]["noisy_reward"] for r in suite["verifiable"])
    if cfg.pair_defect_share:
        manifest["pair_defects"] = {k: sum(r["meta"]["pair_defect"] == k for r in suite["preference"])
                                    for k in ("swapped", "near_identical")}
    paths["manifest"] = write_json(out / "suite.json", manifest)
    log.info("wrote suite (%d pool examples, %d validation) to %s", cfg.size, len(suite["validation"]), out)
    return paths
