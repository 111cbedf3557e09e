import time
from pathlib import Path

import numpy as np
import pytest

from mmocc.data import images
from mmocc.datasets import load_turntable

# every test here gets MMOCC_CACHE_DIR inside tmp_path, so none writes the user cache
pytestmark = pytest.mark.usefixtures("ds_cache_dir")

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
COIL20 = SHARED_DATA / "coil-20-proc"


@pytest.fixture
def coil20_like(tmp_path, ds_write_image):
    """2 objects x 72 poses numbered 0..71 (COIL-20 style, 5 degrees apart)."""
    for obj in (1, 2):
        for pose in range(72):
            ds_write_image(tmp_path / f"obj{obj}__{pose}.png", value=obj * 72 + pose, size=(6, 6), mode="L")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


@pytest.fixture
def coil100_like(tmp_path, ds_write_image):
    """3 objects x 4 photos named by angle in degrees (COIL-100 style)."""
    for obj in (5, 6, 7):
        for angle in (0, 90, 180, 270):
            ds_write_image(tmp_path / f"obj{obj}__{angle}.png", value=obj + angle, size=(6, 6))
    return tmp_path


def test_coil20_numbering_pairs_poses_18_apart(coil20_like, ds_cache_dir):
    ds = load_turntable(coil20_like, size=4, cache_dir=ds_cache_dir)
    assert len(ds) == 144 and ds.view_names == ["front", "side"]
    assert ds.views["front"].shape == (144, 1, 4, 4)
    assert ds.labels.tolist() == [1] * 72 + [2] * 72 and ds.labels.dtype.kind == "i"
    assert np.array_equal(ds.groups, ds.labels)
    assert ds.metadata["angle"][:3].tolist() == [0, 5, 10]
    assert ds.ids[:2].tolist() == ["obj1__0", "obj1__1"]
    # the side view of the sample at angle a is the front view of the sample at a + 90
    front_at_90 = ds.views["front"][(ds.labels == 1) & (ds.metadata["angle"] == 90)]
    assert np.array_equal(ds.views["side"][0], front_at_90[0])
    assert np.array_equal(ds.views["side"][71], ds.views["front"][17])  # 355 + 90 wraps to 85


def test_coil100_numbering_and_options(coil100_like, ds_cache_dir):
    ds = load_turntable(
        coil100_like, delta_deg=180, size=5, mode="RGB", view_names=("a", "b"), cache_dir=ds_cache_dir
    )
    assert len(ds) == 12 and ds.view_names == ["a", "b"]
    assert ds.views["a"].shape == (12, 3, 5, 5)
    assert ds.metadata["angle"][:4].tolist() == [0, 90, 180, 270]
    assert np.array_equal(ds.views["b"][0], ds.views["a"][2])


def test_explicit_angle_step(coil100_like, ds_cache_dir):
    for path in coil100_like.glob("obj*__*.png"):
        obj, angle = path.stem[3:].split("__")
        path.rename(path.with_name(f"obj{obj}__{int(angle) // 90}.png"))
    ds = load_turntable(coil100_like, angle_step=90, size=4, cache_dir=ds_cache_dir)
    assert ds.metadata["angle"][:4].tolist() == [0, 90, 180, 270]


def test_second_load_decodes_nothing(coil100_like, ds_cache_dir, monkeypatch):
    first = load_turntable(coil100_like, size=4, cache_dir=ds_cache_dir)
    monkeypatch.setattr(images, "decode_image", lambda *a: pytest.fail("decoded on a cache hit"))
    second = load_turntable(coil100_like, size=4, cache_dir=ds_cache_dir)
    assert np.array_equal(first.views["side"], second.views["side"])


def test_missing_partner(coil100_like, ds_cache_dir):
    (coil100_like / "obj6__180.png").unlink()
    with pytest.raises(ValueError, match=r"obj6__90\.png: object 6 has no photo at 180 degrees"):
        load_turntable(coil100_like, cache_dir=ds_cache_dir)
    with pytest.warns(UserWarning, match="skipped 1") as record:
        ds = load_turntable(coil100_like, size=4, on_error="skip", cache_dir=ds_cache_dir)
    assert len(record) == 1
    assert len(ds) == 10 and "obj6__90" not in ds.ids


def test_unreadable_photo_drops_both_samples_using_it(coil100_like, ds_cache_dir):
    (coil100_like / "obj7__0.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"object 7 at 0 degrees, view 'front': cannot read image"):
        load_turntable(coil100_like, cache_dir=ds_cache_dir)
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = load_turntable(coil100_like, size=4, on_error="skip", cache_dir=ds_cache_dir)
    assert len(ds) == 10 and not ds_cache_dir.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delta_deg": 0}, "delta_deg"),
        ({"delta_deg": 360}, "delta_deg"),
        ({"delta_deg": 45, "angle_step": 90}, "multiple of angle_step"),
        ({"angle_step": 0}, "angle_step"),
        ({"angle_step": 2}, "beyond 359"),
        ({"view_names": ("a", "a")}, "view_names"),
    ],
)
def test_bad_parameters(coil100_like, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_turntable(coil100_like, **kwargs)


def test_bad_folders(tmp_path, ds_write_image):
    with pytest.raises(FileNotFoundError):
        load_turntable(tmp_path / "nope")
    with pytest.raises(ValueError, match="no image files named"):
        load_turntable(tmp_path)
    ds_write_image(tmp_path / "obj1__5.png")
    ds_write_image(tmp_path / "obj1__05.jpg")
    with pytest.raises(ValueError, match="appears twice"):
        load_turntable(tmp_path)


@pytest.mark.skipif(not COIL20.is_dir(), reason=f"real COIL-20 data not found at {COIL20}")
def test_real_coil20(ds_cache_dir):
    start = time.perf_counter()
    ds = load_turntable(COIL20, size=32, cache_dir=ds_cache_dir)
    cold = time.perf_counter() - start
    assert len(ds) == 1440 and ds.view_names == ["front", "side"]
    assert ds.views["front"].shape == (1440, 1, 32, 32) and ds.views["front"].dtype == np.uint8
    assert ds.classes.tolist() == list(range(1, 21))
    assert np.bincount(ds.labels)[1:].tolist() == [72] * 20
    assert sorted(set(ds.metadata["angle"].tolist())) == list(range(0, 360, 5))
    start = time.perf_counter()
    again = load_turntable(COIL20, size=32, cache_dir=ds_cache_dir)
    warm = time.perf_counter() - start
    assert np.array_equal(ds.views["side"], again.views["side"])
    assert warm < cold
