"""Seeded projections: determinism, the dense block path against its explicit matrix, JL-type accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selectgym.errors import SelectgymError
from selectgym.proxies.projection import IdentityProjector, RademacherProjector, SJLTProjector, make_projector


def _vectors(n: int, dim: int, seed: int) -> torch.Tensor:
    """Correlated vectors (a shared direction plus noise), like gradients of similar examples."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(1, dim, generator=gen)
    return shared + torch.randn(n, dim, generator=gen)


def _cosines(x: torch.Tensor) -> torch.Tensor:
    x = x / x.norm(dim=1, keepdim=True)
    return x @ x.T


@pytest.mark.parametrize("kind", ["sjlt", "rademacher"])
def test_same_seed_same_matrix_other_seed_differs(kind):
    x = _vectors(3, 3000, seed=0)
    a = make_projector(kind, 3000, 64, seed=7).project(x)
    b = make_projector(kind, 3000, 64, seed=7).project(x)
    c = make_projector(kind, 3000, 64, seed=8).project(x)
    assert a.shape == (3, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_rademacher_blocks_equal_explicit_matrix():
    dim_in, dim_out = 2500, 48  # 3 tiles, the last one partial
    proj = RademacherProjector(dim_in, dim_out, seed=5, block_size=1024)
    matrix = proj.matrix()
    assert matrix.shape == (dim_in, dim_out)
    assert torch.allclose(matrix.abs(), torch.tensor(dim_out ** -0.5))
    assert abs(float((matrix > 0).float().mean()) - 0.5) < 0.01
    x = _vectors(5, dim_in, seed=1)
    torch.testing.assert_close(proj.project(x), x @ matrix, rtol=1e-5, atol=1e-4)
    one_block = RademacherProjector(dim_in, dim_out, seed=5, block_size=4096)
    torch.testing.assert_close(one_block.project(x), proj.project(x), rtol=1e-5, atol=1e-4)
    assert torch.equal(RademacherProjector(1000, dim_out, seed=5).matrix(), matrix[:1000])


def test_sjlt_matrix_structure():
    dim_in, dim_out, nnz = 500, 32, 4
    proj = SJLTProjector(dim_in, dim_out, seed=2, nnz=nnz)
    matrix = proj.project(torch.eye(dim_in))
    assert torch.equal((matrix != 0).sum(1), torch.full((dim_in,), nnz))
    assert torch.allclose(matrix[matrix != 0].abs(), torch.tensor(nnz ** -0.5))
    for k in range(nnz):  # one nonzero in each of the nnz output blocks
        block = matrix[:, k * dim_out // nnz:(k + 1) * dim_out // nnz]
        assert torch.equal((block != 0).sum(1), torch.ones(dim_in, dtype=torch.long))


@pytest.mark.parametrize("kind", ["sjlt", "rademacher"])
def test_cosine_error_shrinks_with_dimension(kind):
    x = _vectors(12, 4000, seed=3)
    exact = _cosines(x)
    errors = {}
    for d in (64, 4096):
        errors[d] = float((_cosines(make_projector(kind, 4000, d, seed=11).project(x)) - exact).abs().max())
    assert errors[4096] < 0.1
    assert errors[4096] < errors[64] / 3


@pytest.mark.parametrize("kind", ["sjlt", "rademacher"])
def test_inner_products_unbiased(kind):
    a, b = _vectors(2, 300, seed=4)
    exact = float(a @ b)
    estimates = []
    for seed in range(300):
        pa, pb = make_projector(kind, 300, 16, seed=seed).project(torch.stack([a, b]))
        estimates.append(float(pa @ pb))
    estimates = np.array(estimates)
    stderr = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * stderr
    assert estimates.std() > 0.05 * abs(exact)  # a single d=16 sketch is noisy; the average is not


def test_identity_and_errors():
    x = _vectors(2, 10, seed=0)
    assert torch.equal(make_projector("none", 10).project(x), x)
    assert IdentityProjector(10).dim_out == 10
    with pytest.raises(SelectgymError, match="sjlt, rademacher, none"):
        make_projector("gaussian", 10)
    with pytest.raises(SelectgymError, match=r"expects \(n, 10\)"):
        make_projector("sjlt", 10, 4).project(torch.zeros(2, 11))
    with pytest.raises(SelectgymError, match="nnz"):
        SJLTProjector(10, 30, nnz=4)
    assert make_projector("sjlt", 10, 4, seed=3).config == {"kind": "sjlt", "dim_in": 10, "dim_out": 4,
                                                           "seed": 3, "nnz": 1}
