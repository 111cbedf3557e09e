import numpy as np
import pytest

from mmocc.data.sources import load_source, parse_source
from mmocc.datasets import load_pairs

# every test here gets MMOCC_CACHE_DIR inside tmp_path, so none writes the user cache
pytestmark = pytest.mark.usefixtures("ds_cache_dir")


@pytest.fixture
def cameras(tmp_path, ds_write_image):
    """Two camera folders, three images each with matching stems (one a .jpg)."""
    for k in range(3):
        ds_write_image(tmp_path / "cam1" / f"{k:04d}.png", value=k)
        ds_write_image(tmp_path / "cam2" / f"{k:04d}.{'jpg' if k == 1 else 'png'}", value=50 + k)
    (tmp_path / "cam1" / "notes.txt").write_text("ignored")
    return tmp_path


def test_pairs_by_stem(cameras):
    ds = load_pairs([cameras / "cam1", cameras / "cam2"], size=8)
    assert ds.view_names == ["cam1", "cam2"] and ds.labels is None
    assert ds.ids.tolist() == ["0000", "0001", "0002"]
    assert ds.views["cam2"].shape == (3, 3, 8, 8)
    assert ds.paths["cam2"][1] == str(cameras / "cam2" / "0001.jpg")
    assert not np.array_equal(ds.views["cam1"][0], ds.views["cam2"][0])


def test_named_views_through_the_source_string(cameras):
    ds = load_source(f"pairs:left={cameras / 'cam1'},right={cameras / 'cam2'}", size=8)
    assert ds.view_names == ["left", "right"] and len(ds) == 3
    assert parse_source(f"pairs:{cameras / 'cam1'},{cameras / 'cam2'}").kind == "pairs"


def test_unpaired_files_are_named(cameras, ds_write_image):
    ds_write_image(cameras / "cam1" / "0009.png")
    ds_write_image(cameras / "cam2" / "0007.png")
    with pytest.raises(
        ValueError, match=r"2 unpaired file\(s\): .*0009\.png \(no '0009' in view\(s\) \['cam2'\]\)"
    ):
        load_pairs([cameras / "cam1", cameras / "cam2"], size=8)
    with pytest.warns(UserWarning, match="skipped 2 bad file"):
        ds = load_pairs([cameras / "cam1", cameras / "cam2"], size=8, on_error="skip")
    assert ds.ids.tolist() == ["0000", "0001", "0002"]


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("pairs:", ValueError, "needs folders"),
        ("pairs:left={a},{b}", ValueError, "name every folder"),
        ("pairs:left={a},left={b}", ValueError, "given twice"),
        ("pairs:{a},{a}/../cam1", ValueError, "share the name"),
        ("pairs:{a},{a}/missing", FileNotFoundError, "no such folder"),
    ],
)
def test_bad_pair_sources(cameras, text, error, match):
    with pytest.raises(error, match=match):
        load_source(text.format(a=cameras / "cam1", b=cameras / "cam2"), size=8)


def test_two_files_with_one_stem(cameras, ds_write_image):
    ds_write_image(cameras / "cam1" / "0001.jpg")
    with pytest.raises(ValueError, match="two files with the stem '0001'"):
        load_pairs({"a": cameras / "cam1", "b": cameras / "cam2"})
