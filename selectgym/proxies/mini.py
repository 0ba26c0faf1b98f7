"""``mini``: a small causal LM pretrained here, offline, on the task world of the built-in suite.

A random-weight proxy knows nothing about the tasks, so its losses and rollouts carry no signal, and
SmolLM2 cannot do the suite's arithmetic. ``mini`` is trained from scratch in minutes on CPU on
problems drawn from reasoning-gym (the suite's target families, ``basic_arithmetic`` and ``chain_sum``,
and many other families), rendered with the same chat template the suite is scored with. Its tokenizer
is a byte-level BPE trained on that text with every digit its own token, so numbers are spelt digit by
digit. The loss covers the replies (prompt tokens get ``prompt_loss_weight``), which is what the
proxy's features read, and weighs every example alike: a token-weighted mean would let the few
families with long answers, such as word sorting, outweigh the arithmetic. Everything is drawn from
``MiniConfig.seed``: the same config gives the same weights on the same machine, but another CPU's floating
point gives other weights (``models.weights_digest`` tells builds apart).

So the default build ships with the package (``selectgym/models/mini``, built once with ``MiniConfig()``, weights
digest ``SHIPPED_DIGEST``): ``load_model("mini")`` loads those files on every machine and builds nothing, and
every result that reads ``mini`` is the same everywhere. Other configs (``selectgym model pretrain --seed 1``)
are built on first use and cached under ``$SELECTGYM_CACHE/models/mini-<hash>``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from selectgym.data.suite import DEFAULT_TARGET
from selectgym.errors import SelectgymError
from selectgym.utils import atomic_dir, cache_dir, stable_hash, write_json

log = logging.getLogger(__name__)

MINI_NAME = "mini"  # the name `load_model` knows the default build by
#: the default build, shipped inside the package
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models" / "mini"
#: ``models.weights_digest`` of the shipped build (a test keeps it and the files in step)
SHIPPED_DIGEST = "578115233875a07a"
#: bump when the corpus, tokenizer or training loop changes what a config builds (it is in the cache key)
BUILD_VERSION = 1
#: corpus texts the BPE is trained on (more change little and cost seconds)
TOKENIZER_TEXTS = 20_000
EOS, PAD, IM_START = "<|im_end|>", "<|endoftext|>", "<|im_start|>"
#: the chat template the suite's fallback uses (``selectgym.data.render.FALLBACK_TEMPLATE``), ChatML style
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _terms(min_terms: int, max_terms: int, max_digits: int) -> dict[str, int]:
    return {"min_terms": min_terms, "max_terms": max_terms, "min_digits": 1, "max_digits": max_digits}


#: family -> (reasoning-gym options, share of the corpus). The first two are the suite's target tasks with
#: the suite's settings. The easier variants (one digit, two terms) come first in importance: with them the
#: model learns to read the operands at all, which full-difficulty problems alone did not teach it in minutes.
CORPUS: dict[str, tuple[str, dict[str, Any], float]] = {
    "basic_arithmetic": ("basic_arithmetic", DEFAULT_TARGET["basic_arithmetic"], 0.25),
    "chain_sum": ("chain_sum", DEFAULT_TARGET["chain_sum"], 0.25),
    "basic_arithmetic_1digit": ("basic_arithmetic", _terms(2, 2, 1), 0.10),
    "chain_sum_1digit": ("chain_sum", _terms(2, 2, 1), 0.10),
    "chain_sum_1digit_3terms": ("chain_sum", _terms(2, 3, 1), 0.05),
    "chain_sum_2terms": ("chain_sum", _terms(2, 2, 2), 0.10),
    "spell_backward": ("spell_backward", {}, 0.015),
    "letter_counting": ("letter_counting", {}, 0.015),
    "gcd": ("gcd", {}, 0.015),
    "count_bits": ("count_bits", {}, 0.015),
    "lcm": ("lcm", {}, 0.009),
    "simple_equations": ("simple_equations", {}, 0.009),
    "products": ("products", {}, 0.009),
    "fraction_simplification": ("fraction_simplification", {}, 0.009),
    "prime_factorization": ("prime_factorization", {}, 0.009),
    "caesar_cipher": ("caesar_cipher", {}, 0.009),
    "word_sorting": ("word_sorting", {}, 0.009),
    "number_filtering": ("number_filtering", {}, 0.009),
    "decimal_arithmetic": ("decimal_arithmetic", {}, 0.009),
    "leg_counting": ("leg_counting", {}, 0.009),
}


@dataclass
class MiniConfig:
    """What a ``mini`` build is made of; every field is part of its cache key."""

    seed: int = field(default=0, metadata={"help": "seed of the corpus, tokenizer data, initial weights and order"})
    steps: int = field(default=3000, metadata={"help": "AdamW steps of pretraining"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step (each corpus example is seen once)"})
    lr: float = field(default=1e-3, metadata={
        "help": "peak learning rate (linear warm-up, then cosine decay to a tenth of it)"})
    warmup: int = field(default=150, metadata={"help": "learning-rate warm-up steps"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    prompt_loss_weight: float = field(default=0.0, metadata={
        "help": "weight of prompt tokens in the loss relative to reply tokens (0 = replies only)"})
    vocab_size: int = field(default=1024, metadata={"help": "BPE vocabulary size (digits are single tokens)"})
    hidden_size: int = field(default=128, metadata={"help": "model width"})
    intermediate_size: int = field(default=512, metadata={"help": "MLP width"})
    num_hidden_layers: int = field(default=4, metadata={"help": "transformer layers"})
    num_attention_heads: int = field(default=4, metadata={"help": "attention heads"})
    max_length: int = field(default=96, metadata={"help": "tokens per example; longer corpus examples are dropped"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "max_length"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"mini {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise SelectgymError(f"mini hidden_size {self.hidden_size} must be a multiple of num_attention_heads "
                                 f"{self.num_attention_heads}")
        if not all(math.isfinite(v) for v in (self.lr, self.weight_decay, self.prompt_loss_weight)):
            raise SelectgymError(f"mini lr, weight_decay and prompt_loss_weight must be numbers, got {self.lr}, "
                                 f"{self.weight_decay}, {self.prompt_loss_weight}")
        if self.weight_decay < 0:
            raise SelectgymError(f"--weight-decay must be >= 0, e.g. 0.01; got {self.weight_decay}")
        if self.lr <= 0 or self.warmup < 0 or self.prompt_loss_weight < 0:
            raise SelectgymError(f"mini needs lr > 0, warmup >= 0 and prompt_loss_weight >= 0, got {self.lr}, "
                                 f"{self.warmup}, {self.prompt_loss_weight}")
        if self.vocab_size < 300:
            raise SelectgymError(f"mini vocab_size {self.vocab_size} is below the 256 bytes + specials; use >= 300")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """The cache key: a hash of the config and the build version."""
        return stable_hash({"config": self.to_dict(), "version": BUILD_VERSION}, 12)


def _seed(seed: int, *parts: Any) -> int:
    return int(stable_hash(["mini", seed, *parts], 8), 16) & 0x7FFFFFFF


def corpus(cfg: MiniConfig, size: int) -> list[tuple[str, str]]:
    """``size`` (question, answer) pairs from ``CORPUS``'s families in its shares, shuffled by ``cfg.seed``.

    Generator seeds are hashed from ``cfg.seed`` and the family, so they do not coincide with the
    suite's own seeds (small families still repeat some problems, as a pretrained model would have seen them).
    """
    import reasoning_gym as rg

    total = sum(share for _, _, share in CORPUS.values())
    pairs: list[tuple[str, str]] = []
    for name, (task, options, share) in CORPUS.items():
        n = max(1, round(size * share / total))
        try:
            ds = rg.create_dataset(task, size=n, seed=_seed(cfg.seed, name), **options)
        except Exception as err:  # reasoning-gym raises several types for a bad name or config
            raise SelectgymError(f"reasoning-gym task {task!r} could not be built for mini's corpus: {err}") from None
        pairs.extend((str(e["question"]), str(e["answer"])) for e in ds)
    order = np.random.default_rng(_seed(cfg.seed, "order")).permutation(len(pairs))
    return [pairs[i] for i in order[:size]]


def prompt_of(question: str) -> str:
    """The rendered prompt of a one-turn question, exactly as ``selectgym.data.render.prompt_text`` renders it."""
    return f"{IM_START}user\n{question}{EOS}\n{IM_START}assistant\n"


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (digits split one per token) with ChatML specials, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, IM_START, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=EOS, pad_token=PAD,
                                  additional_special_tokens=[IM_START])
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def model_config(cfg: MiniConfig, tokenizer):
    """The Llama config of a ``mini`` build (tied embeddings, full multi-head attention)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads, max_position_embeddings=cfg.max_length,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def encode(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[list[int], int]]:
    """``(ids, prompt_len)`` per pair, prompt and reply tokenised apart as ``render`` does; too long ones dropped."""
    prompts = tokenizer([prompt_of(q) for q, _ in pairs], add_special_tokens=False)["input_ids"]
    replies = tokenizer([a for _, a in pairs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    out = []
    for p, r in zip(prompts, replies, strict=True):
        if len(p) + len(r) + 1 <= max_length:
            out.append(([*p, *r, eos], len(p)))
    return out


def _batch(items: list[tuple[list[int], int]], pad_id: int, prompt_weight: float):
    """Right-padded ``(ids, attention, loss weights)``; a weight belongs to the token it sits on."""
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    weights = torch.zeros((len(items), width), dtype=torch.float32)
    for i, (seq, plen) in enumerate(items):
        ids[i, :len(seq)] = torch.tensor(seq)
        attention[i, :len(seq)] = 1
        weights[i, 1:plen] = prompt_weight
        weights[i, plen:len(seq)] = 1.0
    return ids, attention, weights


def length_buckets(lengths: list[int], batch_size: int, seed: int, window: int = 32) -> list[list[int]]:
    """Seeded batches of similar length: shuffle, sort each run of ``window`` batches by length, cut, shuffle.

    Corpus examples run from ~20 to ~90 tokens; a random batch pads everything to its longest, which
    made steps about 2.5 times slower.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span].tolist(), key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _lr_factor(step: int, cfg: MiniConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain(cfg: MiniConfig, progress: bool = False, threads: int = 1):
    """Build ``(model, tokenizer, report)`` from scratch: corpus, tokenizer, then ``cfg.steps`` AdamW steps.

    The report holds the loss curve (per-example token-mean reply NLL, averaged per logged window) and
    the seconds each stage took.
    Training runs on ``threads`` CPU threads (one by default: on a shared 2-core machine a second thread
    makes small matrices several times slower, and one thread gives the same floats run after run);
    torch's thread count and global RNGs are given back as they were.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _pretrain(cfg, progress)
    finally:
        torch.set_num_threads(previous)


def _pretrain(cfg: MiniConfig, progress: bool):
    from tqdm.auto import tqdm
    from transformers import LlamaForCausalLM

    started = time.perf_counter()
    pairs = corpus(cfg, cfg.steps * cfg.batch_size)
    t_corpus = time.perf_counter() - started
    tokenizer = train_tokenizer([prompt_of(q) + a + EOS for q, a in pairs[:TOKENIZER_TEXTS]], cfg.vocab_size)
    data = encode(tokenizer, pairs, cfg.max_length)
    if len(data) < cfg.batch_size:
        raise SelectgymError(f"only {len(data)} of the {len(pairs)} corpus examples (steps x batch_size) fit in "
                             f"max_length {cfg.max_length}, less than one batch of {cfg.batch_size}; raise --steps "
                             f"or --max-length")
    t_tok = time.perf_counter() - started - t_corpus
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(cfg.seed, "init"))
        model = LlamaForCausalLM(model_config(cfg, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    batches = length_buckets([len(ids) for ids, _ in data], cfg.batch_size, _seed(cfg.seed, "batches"))
    curve: list[dict[str, float]] = []
    window: list[float] = []
    every = max(1, cfg.steps // 20)
    model.train()
    bar = tqdm(total=cfg.steps, desc="pretraining mini", unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(cfg.steps):
        rows = batches[step % len(batches)]
        ids, attention, weights = _batch([data[i] for i in rows], tokenizer.pad_token_id, cfg.prompt_loss_weight)
        w, reply = weights[:, 1:], (weights[:, 1:] == 1.0).sum(1).clamp(min=1)
        hidden = model.model(input_ids=ids, attention_mask=attention, use_cache=False).last_hidden_state[:, :-1]
        scored = w > 0  # the LM head runs only where a token is scored: most prompt positions are skipped
        nll = torch.zeros_like(w)
        nll[scored] = F.cross_entropy(model.lm_head(hidden[scored]), ids[:, 1:][scored], reduction="none")
        per_example = (nll * w).sum(1) / reply
        loss = per_example.mean()
        if not torch.isfinite(loss):
            raise SelectgymError(f"mini pretraining loss became {loss.item()} at step {step}; lower --lr ({cfg.lr})")
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        window.append(float(((nll.detach() * (w == 1.0)).sum(1) / reply).mean()))
        if (step + 1) % every == 0 or step + 1 == cfg.steps:
            curve.append({"step": step + 1, "reply_loss": float(np.mean(window))})
            log.debug("mini step %d reply loss %.4f", step + 1, curve[-1]["reply_loss"])
            bar.set_postfix(loss=f"{curve[-1]['reply_loss']:.3f}")
            window = []
        bar.update(1)
    bar.close()
    model.eval()
    seconds = time.perf_counter() - started
    report = {"config": cfg.to_dict(), "version": BUILD_VERSION, "examples": len(data),
              "parameters": sum(p.numel() for p in model.parameters()), "curve": curve,
              "seconds": {"corpus": round(t_corpus, 2), "tokenizer": round(t_tok, 2), "total": round(seconds, 2),
                          "threads": torch.get_num_threads()}}
    return model, tokenizer, report


def _save(folder: Path, model, tokenizer, report: dict[str, Any]) -> None:
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / "build.json", report)
    log.info("built mini (%d parameters) in %.0f s", report["parameters"], report["seconds"]["total"])


def build_mini(out: str | Path, cfg: MiniConfig | None = None, progress: bool = False, threads: int = 1) -> Path:
    """Pretrain ``mini`` and save it (model, tokenizer, ``build.json``) atomically into ``out``, replacing it."""
    model, tokenizer, report = pretrain(cfg or MiniConfig(), progress=progress, threads=threads)
    with atomic_dir(out) as tmp:
        _save(tmp, model, tokenizer, report)
    return Path(out)


def is_shipped(cfg: MiniConfig) -> bool:
    """True when ``cfg`` is the config of the shipped build (and the package holds it)."""
    file = SHIPPED_DIR / "build.json"
    if not file.exists():
        return False
    report = json.loads(file.read_text())
    return report.get("config") == cfg.to_dict() and report.get("version") == BUILD_VERSION


def mini_dir(cfg: MiniConfig | None = None, progress: bool = True, threads: int = 1) -> Path:
    """The build of ``cfg`` (the default config unless given): the shipped files for the default config, else the
    cached build, pretrained on first use."""
    cfg = cfg or MiniConfig()
    if is_shipped(cfg):
        return SHIPPED_DIR
    return cached_build(cfg, progress, threads)


def cached_build(cfg: MiniConfig, progress: bool = True, threads: int = 1) -> Path:
    """The build of ``cfg`` on this machine, under ``$SELECTGYM_CACHE/models``; pretrains it on first use. For the
    default config this rebuilds the shipped model here (its digest says whether this CPU gives the same weights)."""
    final = cache_dir() / "models" / f"{MINI_NAME}-{cfg.key()}"
    if (final / "build.json").exists():
        return final
    log.info("building the mini proxy into %s (once, a few minutes on CPU)", final)
    model, tokenizer, report = pretrain(cfg, progress=progress, threads=threads)
    with atomic_dir(final, replace=False) as tmp:
        _save(tmp, model, tokenizer, report)
    return final


def build_report(path: str | Path) -> dict[str, Any]:
    """The ``build.json`` of a saved ``mini`` (config, loss curve, seconds)."""
    file = Path(path) / "build.json"
    if not file.exists():
        raise SelectgymError(f"{path} has no build.json; build it with `selectgym model pretrain --out {path}`")
    return json.loads(file.read_text())
