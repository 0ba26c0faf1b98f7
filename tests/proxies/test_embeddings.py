"""MiniLM embeddings: shape, determinism, and that meaning shows in the geometry."""

from __future__ import annotations

import numpy as np

from selectgym.data.pool import Example
from selectgym.proxies.embeddings import EMBEDDING_DIM, embed_examples, embed_texts, example_text

TEXTS = [
    "What is 12 plus 7? The answer is 19.",
    "Compute 12 + 7. Result: 19.",
    "Spell the word 'garden' backwards: nedrag.",
    "",
]


def test_shape_dtype_and_unit_norm():
    emb = embed_texts(TEXTS, batch_size=2)
    assert emb.shape == (len(TEXTS), EMBEDDING_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert embed_texts([]).shape == (0, EMBEDDING_DIM)


def test_deterministic_and_batch_independent():
    a = embed_texts(TEXTS, batch_size=4)
    b = embed_texts(TEXTS[::-1], batch_size=1)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_similar_texts_are_closer():
    emb = embed_texts(TEXTS[:3])
    same, other = emb[0] @ emb[1], emb[0] @ emb[2]
    assert same > other + 0.2


def test_example_text_and_embeddings():
    ex = Example("a", [{"role": "user", "content": "Add 2 and 3."}], response="5")
    assert example_text(ex) == "Add 2 and 3.\n5"
    np.testing.assert_allclose(embed_examples([ex]), embed_texts(["Add 2 and 3.\n5"]), atol=1e-6)
