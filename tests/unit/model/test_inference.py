"""The optimised inference paths agree with the plain path (no timings here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mmocc import MultimodalOCC
from mmocc.data.inputs import ViewSpec
from mmocc.datasets import MultiViewDataset, make_synthetic
from mmocc.deploy.batch import score_chunks
from mmocc.model import inference
from mmocc.model.inference import InferenceStack, fold_batchnorm, inference_model
from mmocc.model.nn import ArchConfig, ImageDecoder, ImageEncoder, JointAutoencoder, VectorEncoder

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
            if m.affine:
                with torch.no_grad():
                    m.weight.copy_(torch.randn(n, generator=gen))
                    m.bias.copy_(torch.randn(n, generator=gen))


@pytest.mark.parametrize("bias,bn_affine", [(True, True), (False, False), (True, False)])
def test_fold_batchnorm_matches_eval_stack(bias: bool, bn_affine: bool) -> None:
    arch = ArchConfig(filters=(8, 4), dropout=0.3, bias=bias, bn_affine=bn_affine)
    torch.manual_seed(0)
    encoder = ImageEncoder((3, 16, 16), arch)
    decoder = ImageDecoder(encoder, 3, arch)
    vector = VectorEncoder(10, ArchConfig(hidden=(12, 6), dropout=0.5, bias=bias, bn_affine=bn_affine))
    for module in (encoder, decoder, vector):
        _randomise_batchnorm(module)
        module.eval()
    x = torch.rand(5, 3, 16, 16)
    v = torch.rand(5, 10)
    with torch.inference_mode():
        folded_enc = fold_batchnorm(encoder.layers)
        z = encoder(x)
        assert not any(isinstance(m, nn.BatchNorm2d | nn.Dropout) for m in folded_enc)
        torch.testing.assert_close(folded_enc(x), z, atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(fold_batchnorm(decoder.layers)(z), decoder(z), atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(fold_batchnorm(vector.layers)(v), vector(v), atol=ATOL, rtol=1e-5)


def test_fold_batchnorm_leaves_the_model_and_global_rng_alone() -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder((1, 8, 8), ArchConfig(filters=(4,)))
    _randomise_batchnorm(encoder)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    state = torch.random.get_rng_state()
    fold_batchnorm(encoder.layers)
    assert torch.equal(state, torch.random.get_rng_state())
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def _joint_model(shared: bool | str) -> JointAutoencoder:
    specs = [
        ViewSpec("a", "image", (3, 16, 16)),
        ViewSpec("b", "image", (3, 16, 16)),
        ViewSpec("g", "image", (1, 16, 16)),
        ViewSpec("v", "vector", (7,)),
    ]
    torch.manual_seed(1)
    model = JointAutoencoder(specs, ArchConfig(filters=(8, 4), hidden=(6,), shared_weights=shared))
    _randomise_batchnorm(model, seed=2)
    return model.eval()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("block_bytes", [None, 1, 3 * 8 * 16 * 16 * 4])
def test_inference_model_matches_plain_model(channels_last: bool, block_bytes: int | None) -> None:
    model = _joint_model("auto")
    fast = inference_model(model, channels_last=channels_last, block_bytes=block_bytes)
    gen = torch.Generator().manual_seed(3)
    batch = {
        "a": torch.randint(0, 256, (11, 3, 16, 16), dtype=torch.uint8, generator=gen),
        "b": torch.randint(0, 256, (11, 3, 16, 16), dtype=torch.uint8, generator=gen),
        "g": torch.randint(0, 256, (11, 1, 16, 16), dtype=torch.uint8, generator=gen),
        "v": torch.rand(11, 7, generator=gen),
    }
    with torch.inference_mode():
        plain = model(batch)
        out = fast(batch)
    torch.testing.assert_close(out.phi, plain.phi, atol=ATOL, rtol=1e-5)
    for name in batch:
        torch.testing.assert_close(out.recons[name], plain.recons[name], atol=ATOL, rtol=1e-5)
        assert out.recons[name].is_contiguous()
    assert fast.latent_dims() == model.latent_dims()
    stacks = [fast.encoder_of("a"), fast.encoder_of("v")]
    assert all(isinstance(s, InferenceStack) for s in stacks)
    assert stacks[0].micro_batch == (
        None if block_bytes is None else max(1, block_bytes // (8 * 16 * 16 * 4))
    )
    assert stacks[1].micro_batch is None
    assert model.training is False and isinstance(model.encoder_of("a"), ImageEncoder)


def test_inference_mode_matches_no_grad() -> None:
    model = _joint_model("auto")
    batch = {
        "a": torch.rand(4, 3, 16, 16),
        "b": torch.rand(4, 3, 16, 16),
        "g": torch.rand(4, 1, 16, 16),
        "v": torch.rand(4, 7),
    }
    with torch.no_grad():
        reference = model(batch).phi
    with torch.inference_mode():
        torch.testing.assert_close(inference_model(model)(batch).phi, reference, atol=ATOL, rtol=1e-5)


@pytest.fixture(scope="module")
def synthetic() -> MultiViewDataset:
    return make_synthetic(n_per_class=24, n_classes=3, size=16, seed=0)


def _plain_scores(clf: MultimodalOCC, X: object, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Scores through the unoptimised eval-mode model, as before the speed work."""
    with monkeypatch.context() as patch:
        patch.setattr(inference, "for_device", lambda model, device: model)
        return clf.decision_function(X)


@pytest.mark.parametrize(
    "params",
    [
        {"preset": "paper"},
        {"preset": "default"},
        {"preset": "default", "score": "ensemble", "shared_weights": False},
    ],
)
def test_estimator_scores_match_plain_path(
    params: dict, synthetic: MultiViewDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = synthetic[synthetic.labels == 0]
    clf = MultimodalOCC(**params, epochs=2, filters=(8, 4), score_batch_size=10, random_state=0, device="cpu")
    clf.fit(train)
    fast = clf.decision_function(synthetic)
    plain = _plain_scores(clf, synthetic, monkeypatch)
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-4)
    if clf.params_.score == "norm":  # k-NN training scores leave each sample out, so differ
        np.testing.assert_allclose(clf.decision_scores_, plain[synthetic.labels == 0], rtol=1e-4, atol=1e-4)


def test_streaming_scores_equal_in_memory_scores(synthetic: MultiViewDataset) -> None:
    clf = MultimodalOCC(epochs=2, filters=(8, 4), random_state=0, device="cpu").fit(
        synthetic[synthetic.labels == 1]
    )
    whole = clf.decision_function(synthetic)
    chunks = list(score_chunks(clf, synthetic, 7, True))
    assert len(chunks) == -(-len(synthetic) // 7)
    ids = np.concatenate([c.ids for c, _, _, _ in chunks])
    streamed = np.concatenate([s for _, s, _, _ in chunks])
    assert all(parts == {} for _, _, _, parts in chunks)  # the default rule has no parts
    by_view = {v: np.concatenate([c[2][v] for c in chunks]) for v in chunks[0][2]}
    assert set(by_view) == set(synthetic.view_names)
    first = synthetic.view_names[0]
    np.testing.assert_allclose(by_view[first], clf.view_scores(synthetic)[first])
    assert ids.tolist() == synthetic.ids.tolist()
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-5)


def test_inference_copy_follows_model_updates(synthetic: MultiViewDataset) -> None:
    clf = MultimodalOCC(preset="paper", epochs=1, filters=(8, 4), random_state=0, device="cpu")
    clf.fit(synthetic)
    before = clf.decision_function(synthetic)
    np.testing.assert_array_equal(clf.decision_function(synthetic), before)
    with torch.no_grad():
        for p in clf.model_.encoders.parameters():
            p.mul_(2.0)
    after = clf.decision_function(synthetic)
    assert not np.allclose(after, before)
    clf.model_ = clf.model_.__class__(clf.model_.specs, clf.model_.arch)
    assert not np.allclose(clf.decision_function(synthetic), after)


def test_fit_is_reproducible_with_the_optimised_path(synthetic: MultiViewDataset) -> None:
    kwargs = {"epochs": 2, "filters": (8, 4), "random_state": 3, "device": "cpu"}
    a = MultimodalOCC(**kwargs).fit(synthetic)
    b = MultimodalOCC(**kwargs).fit(synthetic)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    np.testing.assert_array_equal(a.decision_function(synthetic), b.decision_function(synthetic))


class _AutocastProbe(nn.Module):
    """A backbone that records whether each call ran under CPU bf16 autocast."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.calls: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(torch.is_autocast_enabled("cpu"))
        return self.conv(x)


@pytest.mark.parametrize(("amp", "native", "expected"), [(True, True, True), (True, False, False),
                                                         ("auto", True, False), (False, True, False)])
def test_amp_true_scores_under_bf16_only_where_it_is_native(monkeypatch, amp, native, expected):
    monkeypatch.setattr("mmocc.model.device.native_bf16", lambda device: native)
    data = make_synthetic(n_per_class=8, n_classes=2, size=16, seed=0)
    probe = _AutocastProbe()
    clf = MultimodalOCC(score="patch", patch_backbone=probe, amp=amp, random_state=0, verbose=False)
    scores = clf.fit(data).decision_function(data)
    assert scores.dtype == np.float64 and np.isfinite(scores).all()
    assert probe.calls[0] is False  # wrap_backbone's probe at fit, outside scoring
    assert len(probe.calls) > 1 and set(probe.calls[1:]) == {expected}
