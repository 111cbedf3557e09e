"""Exact and approximate k-NN search: agreement with scikit-learn, leave-one-out by index, blocking, faiss."""

import sys

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from mmocc.scoring import Features, KNNScore
from mmocc.search import index as search_index
from mmocc.search.index import NeighborIndex


def _images(n: int, dims: int, seed: int) -> np.ndarray:
    """[0, 1] rows with a large common mean, like scaled images (the matmul trick's hard case)."""
    rng = np.random.default_rng(seed)
    return np.clip(0.6 + 0.05 * rng.normal(size=(n, dims)), 0, 1).astype(np.float32)


def _reference(bank: np.ndarray, queries: np.ndarray, k: int, own: np.ndarray | None) -> np.ndarray:
    """Float64 brute force, leaving out each query's own row by index."""
    dist = np.linalg.norm(queries[:, None, :].astype(np.float64) - bank[None].astype(np.float64), axis=2)
    if own is not None:
        dist[np.arange(len(queries)), own] = np.inf
    return np.sort(dist, axis=1)[:, :k]


def test_exact_matches_sklearn_scores_and_leave_one_out():
    bank, queries = _images(300, 512, 0), _images(80, 512, 1)
    index = NeighborIndex(bank)
    sk = NearestNeighbors(algorithm="brute").fit(bank)
    old, _ = sk.kneighbors(queries, n_neighbors=5)
    np.testing.assert_allclose(index.mean_distance(queries, 5), old.mean(axis=1), rtol=1e-5)
    old_loo, _ = sk.kneighbors(bank, n_neighbors=6)  # today's rule: the point itself comes back first
    loo = index.mean_distance(bank, 5, np.arange(300))
    np.testing.assert_allclose(loo, old_loo[:, 1:].mean(axis=1), rtol=1e-5)


def test_leave_one_out_excludes_itself_by_index_even_with_duplicates():
    bank = _images(60, 64, 2)
    bank[[10, 20, 30]] = bank[5]  # four copies of one sample
    dist, idx = NeighborIndex(bank).kneighbors(bank, 4, np.arange(60))
    np.testing.assert_allclose(dist, _reference(bank, bank, 4, np.arange(60)), rtol=1e-6, atol=1e-6)
    assert not (idx == np.arange(60)[:, None]).any()
    for row in (5, 10, 20, 30):  # the other three copies, at distance 0, are the nearest neighbours
        assert set(idx[row, :3]) == {5, 10, 20, 30} - {row} and np.all(dist[row, :3] == 0)


def test_blocking_gives_the_result_of_one_block():
    bank, queries = _images(200, 96, 3), _images(50, 96, 4)
    one = NeighborIndex(bank, block_bytes=2**30).kneighbors(queries, 7, np.arange(50))
    rows = NeighborIndex(bank, block_bytes=1).kneighbors(queries, 7, np.arange(50))  # one query per block
    np.testing.assert_allclose(rows[0], one[0], rtol=1e-12)
    np.testing.assert_array_equal(rows[1], one[1])


def test_bad_arguments_are_named():
    index = NeighborIndex(_images(10, 4, 5))
    with pytest.raises(ValueError, match="knn_search='fast' is not valid"):
        NeighborIndex(_images(10, 4, 5), "fast")
    with pytest.raises(ValueError, match=r"k must be in \[1, 9\]"):
        index.kneighbors(_images(3, 4, 6), 10, np.arange(3))
    with pytest.raises(ValueError, match="self_index must be 3 bank rows"):
        index.kneighbors(_images(3, 4, 6), 2, np.array([0, 1, 10]))
    with pytest.raises(ValueError, match=r"queries must be \(n, 4\)"):
        index.kneighbors(_images(3, 5, 6), 2)


def test_knn_score_leave_one_out_counts_a_duplicate_view_as_a_neighbour():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 3)).astype(np.float32)
    rule = KNNScore(1, "pooled", "latent", {"a": "g", "b": "g"})
    rule.fit(Features(latents={"a": a, "b": a.copy()}))  # both cameras see the same thing
    raw, _, _ = rule._raw(Features(latents={"a": a, "b": a}), leave_self_out=True)
    np.testing.assert_array_equal(raw, 0.0)


def test_approximate_recall_and_leave_one_out_on_clusters():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(20, 32)).astype(np.float32)
    bank = (centres[rng.integers(0, 20, 2000)] + 0.3 * rng.normal(size=(2000, 32))).astype(np.float32)
    bank[100] = bank[50]
    approximate = NeighborIndex(bank, "approximate", exact_below=0)
    exact = NeighborIndex(bank)
    own = np.arange(2000)
    _, got = approximate.kneighbors(bank, 5, own)
    _, want = exact.kneighbors(bank, 5, own)
    recall = np.mean([len(set(g) & set(w)) / 5 for g, w in zip(got, want, strict=True)])
    assert recall > 0.98
    assert not (got == own[:, None]).any() and got[50, 0] == 100 and got[100, 0] == 50


def test_approximate_on_a_small_bank_is_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    feats = Features(latents={"a": rng.normal(size=(40, 4)).astype(np.float32)})
    exact, approximate = (
        KNNScore(3, "view", "latent", {"a": "a"}),
        KNNScore(3, "view", "latent", {"a": "a"}, "approximate"),
    )
    np.testing.assert_array_equal(approximate.fit(feats), exact.fit(feats))
    np.testing.assert_array_equal(approximate.score(feats), exact.score(feats))


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    monkeypatch.setattr(search_index, "faiss_module", search_index.faiss_module.__wrapped__)  # not cached
    with pytest.raises(ImportError, match=r'pip install "mmocc\[faiss\]"'):
        NeighborIndex(_images(10, 4, 0), "approximate", exact_below=0)
    with pytest.raises(ImportError, match=r'pip install "mmocc\[faiss\]"'):
        KNNScore(5, search="approximate")
    with pytest.raises(ValueError, match="knn_search='exactly' is not valid"):
        KNNScore(5, search="exactly")
