"""The training speed path: channels-last layout, the centre on the inference copy, bf16 only where native."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mmocc import MultimodalOCC
from mmocc.data.inputs import ViewSpec
from mmocc.model import device as device_module
from mmocc.model.device import native_bf16, resolve_amp
from mmocc.model.hyperparams import DEFAULT, PAPER
from mmocc.model.losses import JointLoss
from mmocc.model.nn import JointAutoencoder
from mmocc.model.training import fit_autoencoder, fit_scalers, initial_center, training_layout

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _views(n: int = 24, shape: tuple[int, ...] = (1, 8, 8), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v: rng.integers(0, 256, (n, *shape), dtype=np.uint8) for v in ("a", "b")}


def _model(views: dict[str, np.ndarray], hp=DEFAULT) -> JointAutoencoder:
    torch.manual_seed(0)
    model = JointAutoencoder([ViewSpec(k, "image", v.shape[1:]) for k, v in views.items()],
                             replace(hp, filters=(4, 4)).arch())
    fit_scalers(model, views, hp.scaling)
    return model


def test_training_layout_makes_images_channels_last_and_keeps_values() -> None:
    data = {"img": torch.rand(3, 2, 4, 4), "vec": torch.rand(3, 5)}
    out = training_layout(data, channels_last=True)
    assert out["img"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out["img"], data["img"]) and out["vec"] is data["vec"]
    assert training_layout(data, channels_last=False) is data


@pytest.mark.parametrize("channels_last", [True, False])
def test_parameters_are_contiguous_after_training(channels_last: bool) -> None:
    views = _views()
    model = _model(views)
    data = {k: torch.from_numpy(v) for k, v in views.items()}
    loss = JointLoss(center=None, units=model.bottleneck_units())
    history = fit_autoencoder(model, data, replace(PAPER, epochs=2), loss,
                              generator=torch.Generator().manual_seed(0), channels_last=channels_last)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert all(p.is_contiguous() for p in model.parameters())  # safetensors needs contiguous tensors


def test_channels_last_training_matches_nchw_up_to_rounding() -> None:
    views = _views()
    losses = []
    hp = replace(PAPER, epochs=2, dropout=0.0)  # dropout masks are drawn in memory order
    for channels_last in (False, True):
        model = _model(views, hp)
        data = {k: torch.from_numpy(v) for k, v in views.items()}
        loss = JointLoss(center=None, units=model.bottleneck_units())
        history = fit_autoencoder(model, data, hp, loss,
                                  generator=torch.Generator().manual_seed(0), channels_last=channels_last)
        losses.append([h["loss"] for h in history])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_centre_on_the_inference_copy_equals_the_eval_model_mean() -> None:
    views = _views(40)
    model = _model(views)
    data = {k: torch.from_numpy(v) for k, v in views.items()}
    with torch.inference_mode():
        expected = model.eval()(data, decode=False).phi.double().mean(dim=0).float()
    centre = initial_center(model, data, batch_size=16)
    moved = expected.abs() < 0.1
    torch.testing.assert_close(centre[~moved], expected[~moved], rtol=1e-4, atol=1e-5)
    assert torch.all(centre[moved].abs() == 0.1)


def test_fitted_model_saves_and_scores_identically(tmp_path: Path) -> None:
    import mmocc

    views = _views(30)
    clf = MultimodalOCC(epochs=2, filters=(4, 4), random_state=0, device="cpu").fit(views)
    clf.save(tmp_path / "m.mmocc")
    again = mmocc.load(tmp_path / "m.mmocc")
    np.testing.assert_array_equal(again.decision_function(views), clf.decision_function(views))


def test_bf16_is_native_only_with_avx512_bf16_or_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert native_bf16(CPU) and resolve_amp("auto", CPU) and resolve_amp(True, CPU)
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: frozenset({"avx512f"}))
    assert not native_bf16(CPU)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert not native_bf16(CPU)
    assert not resolve_amp("auto", CPU) and not resolve_amp(True, CPU) and not resolve_amp(False, CPU)


def test_amp_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="amp must be 'auto', True or False, got 'yes'"):
        resolve_amp("yes", CPU)
    with pytest.raises(ValueError, match="amp must be 'auto', True or False, got 2"):
        MultimodalOCC(amp=2).fit(_views())


def test_benchmark_variants_are_undone_and_the_reference_scores() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import paper_reference
        import speed
    finally:
        sys.path.remove(str(BENCHMARKS))
    from mmocc.model import training

    adam, amp, kw = torch.optim.Adam, training.resolve_amp, dict(training.fit_autoencoder.__kwdefaults__)
    with speed.training_variant(fused_adam=True, bf16=True), speed.nchw_training():
        assert training.resolve_amp("auto", CPU) is True
        assert training.fit_autoencoder.__kwdefaults__["channels_last"] is False
    assert torch.optim.Adam is adam and training.resolve_amp is amp
    assert training.fit_autoencoder.__kwdefaults__ == kw
    views = _views(20, (1, 16, 16))
    scores = paper_reference.fit_score([views["a"]], [views["a"][:5]])
    assert scores.shape == (5,) and np.all(np.isfinite(scores)) and np.all(scores > 0)
