import numpy as np
import pytest

from mmocc.datasets import load_folder

# every test here gets MMOCC_CACHE_DIR inside tmp_path, so none writes the user cache
pytestmark = pytest.mark.usefixtures("ds_cache_dir")


@pytest.fixture
def root(tmp_path, ds_write_image):
    """root/<label>/<sample>/<view>.png with 2 labels x 2 samples x views top, side."""
    root = tmp_path / "data"
    for label in ("beetle", "fly"):
        for k in range(2):
            for v, view in enumerate(("top", "side")):
                ds_write_image(root / label / f"s{k}" / f"{view}.png", value=10 * k + v)
    (root / "README.txt").write_text("ignored")
    (root / "fly" / "s0" / ".hidden.png").write_bytes(b"ignored")
    return root


def test_load(root, ds_cache_dir):
    ds = load_folder(root, size=6, cache_dir=ds_cache_dir)
    assert ds.view_names == ["side", "top"]
    assert ds.views["top"].shape == (4, 3, 6, 6) and ds.views["top"].dtype == np.uint8
    assert ds.labels.tolist() == ["beetle", "beetle", "fly", "fly"]
    assert ds.ids.tolist() == ["beetle/s0", "beetle/s1", "fly/s0", "fly/s1"]
    assert ds.groups is None


def test_views_parameter_orders_and_allows_extras(root, ds_cache_dir, ds_write_image):
    ds_write_image(root / "fly" / "s1" / "bottom.png")
    ds = load_folder(root, views=["top", "side"], size=6, mode="L", cache_dir=ds_cache_dir)
    assert ds.view_names == ["top", "side"] and ds.views["side"].shape == (4, 1, 6, 6)


def test_integer_label_folders_become_ints(tmp_path, ds_write_image, ds_cache_dir):
    for label in ("1", "2"):
        ds_write_image(tmp_path / label / "a" / "v.png")
    assert load_folder(tmp_path, size=4, cache_dir=ds_cache_dir).labels.tolist() == [1, 2]


def test_inconsistent_views_raise(root, ds_write_image, ds_cache_dir):
    (root / "fly" / "s1" / "side.png").rename(root / "fly" / "s1" / "lateral.png")
    with pytest.raises(ValueError, match=r"fly/s1: views \['lateral', 'top'\] differ .*missing \['side'\]"):
        load_folder(root, cache_dir=ds_cache_dir)


def test_inconsistent_views_skip(root, ds_cache_dir):
    (root / "fly" / "s1" / "side.png").unlink()
    with pytest.warns(UserWarning, match="skipped 1") as record:
        ds = load_folder(root, size=4, on_error="skip", cache_dir=ds_cache_dir)
    assert len(record) == 1 and "fly/s1" in str(record[0].message)
    assert ds.ids.tolist() == ["beetle/s0", "beetle/s1", "fly/s0"]


def test_unreadable_image(root, ds_cache_dir):
    (root / "beetle" / "s1" / "top.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match=r"sample beetle/s1, view 'top': cannot read image"):
        load_folder(root, cache_dir=ds_cache_dir)
    with pytest.warns(UserWarning, match="top.png"):
        ds = load_folder(root, size=4, on_error="skip", cache_dir=ds_cache_dir)
    assert len(ds) == 3


def test_two_files_for_one_view(root, ds_write_image):
    ds_write_image(root / "fly" / "s0" / "top.jpg")
    with pytest.raises(ValueError, match="two files for view 'top'"):
        load_folder(root)


def test_empty_or_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "nope")
    (tmp_path / "label").mkdir()
    with pytest.raises(ValueError, match="no samples found"):
        load_folder(tmp_path)
    (tmp_path / "label" / "s0").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_folder(tmp_path)


def test_unlabelled_layout(tmp_path, ds_write_image, ds_cache_dir):
    for k in range(3):
        for view in ("left", "right"):
            ds_write_image(tmp_path / f"part{k}" / f"{view}.png", value=k)
    (tmp_path / "empty").mkdir()
    ds = load_folder(tmp_path, size=6)
    assert ds.labels is None and ds.ids.tolist() == ["part0", "part1", "part2"]
    assert ds.view_names == ["left", "right"] and ds.views["left"].shape == (3, 3, 6, 6)
    assert ds.paths["right"][2] == str(tmp_path / "part2" / "right.png")


def test_mixed_layouts_are_refused(root, ds_write_image):
    ds_write_image(root / "loose" / "top.png")
    with pytest.raises(
        ValueError, match="mixes label folders .* and sample folders holding images \\(loose\\)"
    ):
        load_folder(root)


def test_turntable_and_camera_folders_get_a_hint(tmp_path, ds_write_image):
    for pose in (0, 1):
        ds_write_image(tmp_path / "coil" / f"obj1__{pose}.png")
        ds_write_image(tmp_path / "cam" / f"{pose:04d}.png")
    with pytest.raises(ValueError, match="look like a turntable collection: use turntable:"):
        load_folder(tmp_path / "coil")
    with pytest.raises(ValueError, match="use pairs:DIR_A,DIR_B"):
        load_folder(tmp_path / "cam")


def test_folder_mode_auto_detects_greyscale(tmp_path, ds_write_image):
    ds_write_image(tmp_path / "a" / "v.png", mode="L")
    assert load_folder(tmp_path, size=6).views["v"].shape == (1, 1, 6, 6)
