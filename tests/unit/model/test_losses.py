import math

import numpy as np
import pytest
import torch

from mmocc.model import losses


def _loop_similarity(units, gamma):
    n, c, _ = units.shape
    sim = torch.zeros(n, c, c, dtype=units.dtype)
    for i in range(n):
        for a in range(c):
            for b in range(c):
                sim[i, a, b] = math.exp(-gamma * float(((units[i, a] - units[i, b]) ** 2).sum()))
    return sim


@pytest.fixture
def units():
    return torch.from_numpy(np.random.default_rng(0).normal(size=(3, 4, 5)) * 0.3)


def test_similarity_matches_a_loop(units):
    torch.testing.assert_close(losses.unit_similarity(units, 0.7), _loop_similarity(units, 0.7))


def test_each_regularizer_matches_a_loop(units):
    sim = _loop_similarity(units, 0.7)
    direct = np.mean([float(sim[i].sum() - sim[i].diagonal().sum()) for i in range(3)])
    det = np.mean([-float(np.linalg.det(sim[i].numpy())) for i in range(3)])
    eps = 1e-3
    logdet = np.mean([-float(np.linalg.slogdet(sim[i].numpy() + eps * np.eye(4))[1]) for i in range(3)])
    assert float(losses.diversity(units, "direct", gamma=0.7)) == pytest.approx(direct, rel=1e-9)
    assert float(losses.diversity(units, "det", gamma=0.7)) == pytest.approx(det, rel=1e-9)
    assert float(losses.diversity(units, "logdet", gamma=0.7, eps=eps)) == pytest.approx(logdet, rel=1e-9)


@pytest.mark.parametrize("kind", ["direct", "det", "logdet"])
def test_gradcheck(units, kind):
    x = units.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u: losses.diversity(u, kind, gamma=0.7), (x,))


def test_logdet_is_finite_for_identical_units():
    same = torch.ones(2, 6, 4, dtype=torch.float64, requires_grad=True)
    value = losses.diversity(same, "logdet")
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(same.grad).all()


def test_unknown_regularizer():
    with pytest.raises(ValueError, match="unknown diversity regularizer 'dpp'"):
        losses.diversity(torch.zeros(1, 2, 2), "dpp")


def test_compactness_and_reconstruction_per_sample():
    phi = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert losses.compactness(phi).tolist() == [25.0, 1.0]
    assert losses.compactness(phi, torch.tensor([3.0, 4.0])).tolist() == [0.0, 18.0]
    x = {"a": torch.zeros(2, 1, 2, 2)}
    xhat = {"a": torch.ones(2, 1, 2, 2)}
    assert losses.reconstruction(x, xhat).tolist() == [4.0, 4.0]


def test_penalties_at_the_extremes():
    c, eps = 5, 1e-3
    same = torch.zeros(2, c, 3, dtype=torch.float64)
    far = (torch.eye(c, dtype=torch.float64) * 100.0).unsqueeze(0).repeat(2, 1, 1)
    assert float(losses.diversity(same, "direct")) == pytest.approx(c * (c - 1))
    assert float(losses.diversity(far, "direct")) == pytest.approx(0.0, abs=1e-12)
    assert float(losses.diversity(same, "det")) == pytest.approx(0.0, abs=1e-9)
    assert float(losses.diversity(far, "det")) == pytest.approx(-1.0)
    expected_same = -(math.log(c + eps) + (c - 1) * math.log(eps))
    assert float(losses.diversity(same, "logdet", eps=eps)) == pytest.approx(expected_same)
    assert float(losses.diversity(far, "logdet", eps=eps)) == pytest.approx(-c * math.log(1 + eps))


@pytest.mark.parametrize("kind", ["direct", "det", "logdet"])
def test_minimising_the_penalty_spreads_the_units(kind):
    units = (
        torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.2
    ).requires_grad_()

    def spread(u):
        return float(torch.cdist(u.detach(), u.detach()).pow(2).mean())

    before = spread(units)
    optimizer = torch.optim.SGD([units], lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        losses.diversity(units, kind, gamma=0.5).backward()
        optimizer.step()
    assert spread(units) > before
