"""Streaming sources: chunks decoded lazily equal the in-memory load, with a bounded prefetch."""

import csv
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from mmocc.data import listing
from mmocc.data.dataset import MultiViewDataset, concat_datasets
from mmocc.data.sources import load_source
from mmocc.data.streaming import SourcePlan, plan_source, rebatch


def assert_same(a: MultiViewDataset, b: MultiViewDataset) -> None:
    assert a.view_names == b.view_names
    for name in a.view_names:
        assert a.views[name].dtype == b.views[name].dtype
        np.testing.assert_array_equal(a.views[name], b.views[name])
    assert a.ids.tolist() == b.ids.tolist()
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert a.labels.dtype == b.labels.dtype and a.labels.tolist() == b.labels.tolist()
    assert (a.groups is None) == (b.groups is None)
    assert sorted(a.metadata) == sorted(b.metadata)
    for key in a.metadata:
        assert a.metadata[key].tolist() == b.metadata[key].tolist()
    assert {k: v.tolist() for k, v in a.paths.items()} == {k: v.tolist() for k, v in b.paths.items()}


def streamed(plan: SourcePlan, chunk_size: int, prefetch: int = 2) -> MultiViewDataset:
    return concat_datasets(list(plan.chunks(chunk_size, prefetch)))


@pytest.fixture
def sources(tmp_path: Path, ds_write_image, ds_cache_dir) -> dict[str, str]:
    """A manifest, a folder tree, two camera folders and a turntable folder of tiny images."""
    manifest = ["sample_id,label,group,left,right"]
    for i in range(11):
        left = ds_write_image(tmp_path / "img" / f"{i}_l.png", value=20 * i)
        ds_write_image(tmp_path / "img" / f"{i}_r.png", value=200 - 15 * i)
        manifest.append(f"m{i},{i % 3},{i // 2},img/{left.name},img/{i}_r.png")
        for cam in ("cam_a", "cam_b"):
            ds_write_image(tmp_path / cam / f"p{i:02d}.png", value=7 * i + len(cam))
        ds_write_image(tmp_path / "tree" / f"c{i % 2}" / f"s{i}" / "top.png", value=9 * i)
        ds_write_image(tmp_path / "tree" / f"c{i % 2}" / f"s{i}" / "side.png", value=3 * i, mode="L")
    for obj in (1, 2):
        for pose in range(8):
            ds_write_image(tmp_path / "coil" / f"obj{obj}__{pose}.png", value=obj * 30 + pose, mode="L")
    (tmp_path / "m.csv").write_text("\n".join(manifest) + "\n")
    return {
        "manifest": str(tmp_path / "m.csv"),
        "folder": str(tmp_path / "tree"),
        "pairs": f"pairs:{tmp_path / 'cam_a'},{tmp_path / 'cam_b'}",
        "turntable": f"turntable:{tmp_path / 'coil'}",
    }


@pytest.mark.parametrize("kind", ["manifest", "folder", "pairs", "turntable"])
def test_chunks_equal_the_in_memory_load(sources: dict[str, str], kind: str) -> None:
    options = {"size": 6, "angle_step": 45} if kind == "turntable" else {"size": 6}
    whole = load_source(sources[kind], **options)
    plan = plan_source(sources[kind], **options)
    assert plan.ids.tolist() == whole.ids.tolist() and len(plan) == len(whole)
    assert plan.options["mode"] in ("L", "RGB")
    for chunk_size, prefetch in ((4, 2), (5, 0), (1, 1), (100, 2)):
        assert_same(streamed(plan, chunk_size, prefetch), whole)
    part = plan.subset(np.array([3, 1]))
    assert_same(part.load(), whole[np.array([3, 1])])


def test_synthetic_plans_slice_the_loaded_data() -> None:
    whole = load_source("synthetic:n_per_class=5,n_classes=2", size=8)
    plan = plan_source("synthetic:n_per_class=5,n_classes=2", size=8)
    assert plan.listing is None and plan.labels.tolist() == whole.labels.tolist()
    assert [len(c) for c in plan.chunks(4)] == [4, 4, 2]
    assert_same(streamed(plan, 3), whole)
    assert_same(plan.subset(slice(2, 5)).load(), whole[2:5])


def test_auto_mode_is_resolved_when_planning(sources: dict[str, str]) -> None:
    plan = plan_source(sources["turntable"], size=6, mode="L", angle_step=45)
    assert plan.options["mode"] == "L"
    assert plan_source(sources["pairs"], size=6).options["mode"] == "RGB"


def test_skip_drops_a_corrupt_file_within_its_chunk(sources: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "img" / "6_r.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning) as whole_warnings:
        whole = load_source(sources["manifest"], size=6, on_error="skip")
    plan = plan_source(sources["manifest"], size=6, on_error="skip", cache=False)
    with pytest.warns(UserWarning) as chunk_warnings:
        chunks = list(plan.chunks(4))
    assert [len(c) for c in chunks] == [4, 3, 3] and "m6" not in whole.ids
    assert_same(concat_datasets(chunks), whole)
    assert [str(w.message) for w in chunk_warnings] == [str(w.message) for w in whole_warnings]
    assert "6_r.png" in str(chunk_warnings[0].message)
    with pytest.raises(ValueError, match="cannot read image") as raised:
        list(plan_source(sources["manifest"], size=6).chunks(4))
    with pytest.raises(ValueError) as whole_raised:
        load_source(sources["manifest"], size=6)
    assert str(raised.value) == str(whole_raised.value)


def test_the_prefetch_bound_holds(sources: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At most prefetch + 1 decoded chunks are alive while a slow consumer holds one."""
    alive: weakref.WeakSet[MultiViewDataset] = weakref.WeakSet()
    peak = [0]
    decode = listing.ImageListing.decode

    def counted(self: listing.ImageListing, rows: slice):  # type: ignore[no-untyped-def]
        dataset, messages = decode(self, rows)
        alive.add(dataset)
        peak[0] = max(peak[0], len(alive))
        return dataset, messages

    monkeypatch.setattr(listing.ImageListing, "decode", counted)
    plan = plan_source(sources["pairs"], size=6, cache=False)
    for prefetch in (1, 2):
        peak[0] = 0
        for chunk in plan.chunks(1, prefetch):
            time.sleep(0.02)  # the producer runs ahead as far as it may
            peak[0] = max(peak[0], len(alive))
            del chunk
        assert 2 <= peak[0] <= prefetch + 1


def test_stopping_early_ends_the_prefetch_thread(sources: dict[str, str]) -> None:
    before = set(threading.enumerate())
    plan = plan_source(sources["pairs"], size=6, cache=False)
    for _ in plan.chunks(1, prefetch=2):
        break
    with pytest.raises(RuntimeError, match="consumer"):
        for _ in plan.chunks(2, prefetch=3):
            raise RuntimeError("the consumer failed")
    assert not [t for t in set(threading.enumerate()) - before if t.name == "mmocc-prefetch"]


def test_a_job_error_reaches_the_consumer_in_order() -> None:
    def fail() -> int:
        raise OSError("disk gone")

    results = listing.prefetched([lambda: 1, fail, lambda: 3], depth=2)
    assert next(results) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(results)


def test_rebatch_regroups_uneven_parts() -> None:
    whole = load_source("synthetic:n_per_class=5,n_classes=2", size=8)
    parts = [whole[0:3], whole[3:4], whole[4:9], whole[9:10]]
    batches = list(rebatch(parts, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert_same(concat_datasets(batches), whole)


def test_bad_chunk_options_are_refused(sources: dict[str, str]) -> None:
    plan = plan_source(sources["pairs"], size=6)
    with pytest.raises(ValueError, match="chunk_size"):
        next(plan.chunks(0))
    with pytest.raises(ValueError, match="prefetch"):
        next(plan.chunks(2, prefetch=-1))


def test_streamed_score_csv_equals_the_in_memory_one(
    sources: dict[str, str], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded in chunks of 7 and scored in batches of 4, the CSV is byte for byte the in-memory one."""
    import io

    import torch

    from mmocc import MultimodalOCC
    from mmocc.cli import main
    from mmocc.deploy.batch import score_chunks, score_columns

    torch.set_num_threads(1)
    data = load_source(sources["manifest"], size=6)
    model = tmp_path / "model.mmocc"
    clf = MultimodalOCC(epochs=1, filters=(4, 4), random_state=0, device="cpu").fit(data[:6])
    clf.save(model)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    for i, (chunk, scores, by_view, parts) in enumerate(score_chunks(clf, data, 4, True)):
        columns = score_columns(chunk, scores, clf.threshold_, by_view, parts)
        writer.writerows([list(columns)] if i == 0 else [])
        writer.writerows(zip(*columns.values(), strict=True))
    chunks = SourcePlan.chunks
    sizes = []

    def by_seven(self: SourcePlan, chunk_size: int, prefetch: int = 2):  # type: ignore[no-untyped-def]
        sizes.append(chunk_size)
        return chunks(self, 7, prefetch)

    monkeypatch.setattr(SourcePlan, "chunks", by_seven)
    out = tmp_path / "scores.csv"
    with pytest.raises(SystemExit) as status:
        main(
            ["score", str(model), "--data", sources["manifest"], "--out", str(out), "-q", "--batch-size", "4"]
        )
    assert status.value.code == 0, capsys.readouterr().err
    assert sizes == [4]
    assert out.read_bytes().decode() == expected.getvalue()
