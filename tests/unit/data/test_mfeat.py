from pathlib import Path

import numpy as np
import pytest

from mmocc.data.mfeat import MFEAT_VIEWS
from mmocc.datasets import load_mfeat

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MFEAT = SHARED_DATA / "uci-mfeat"


def write_view(root, name, labels, rng, values=None):
    d = MFEAT_VIEWS[name]
    if values is None:
        values = rng.integers(0, 7, (len(labels), d)) if name == "pix" else rng.normal(size=(len(labels), d))
    header = ",".join(str(i) for i in range(d)) + ",0"
    rows = [",".join(str(v) for v in [*row, label]) for row, label in zip(values, labels, strict=True)]
    (root / f"mfeat-{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    return values


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(0)
    labels = [0, 0, 1, 1, 2]
    pix = write_view(tmp_path, "pix", labels, rng)
    write_view(tmp_path, "fou", labels, rng)
    write_view(tmp_path, "mor", labels, rng)
    return tmp_path, pix


def test_small_files(small):
    root, pix = small
    ds = load_mfeat(root, views=("pix", "fou", "mor"))
    assert ds.view_names == ["pix", "fou", "mor"]
    assert ds.views["pix"].shape == (5, 1, 16, 15) and ds.views["pix"].dtype == np.uint8
    assert np.array_equal(ds.views["pix"].reshape(5, -1), np.rint(pix * 255 / 6).astype(np.uint8))
    assert ds.views["fou"].shape == (5, 76) and ds.views["fou"].dtype == np.float32
    assert ds.labels.tolist() == [0, 0, 1, 1, 2] and ds.labels.dtype.kind == "i"


def test_errors(small):
    root, _ = small
    with pytest.raises(ValueError, match="distinct names"):
        load_mfeat(root, views=("pix", "nope"))
    with pytest.raises(FileNotFoundError, match="mfeat-kar.csv"):
        load_mfeat(root, views=("pix", "kar"))
    write_view(root, "fou", [0, 0, 1, 2, 2], np.random.default_rng(1))
    with pytest.raises(ValueError, match="mfeat-fou.csv: labels differ"):
        load_mfeat(root)
    (root / "mfeat-fou.csv").write_text("0,1\n1,2\n")
    with pytest.raises(ValueError, match="expected rows of 76 features"):
        load_mfeat(root, views="fou")
    write_view(root, "pix", [0, 1], None, values=np.full((2, 240), 9))
    with pytest.raises(ValueError, match="pixel values"):
        load_mfeat(root, views="pix")


@pytest.mark.skipif(not MFEAT.is_dir(), reason=f"real UCI mfeat data not found at {MFEAT}")
def test_real_mfeat():
    ds = load_mfeat(MFEAT, views=None)
    assert len(ds) == 2000
    assert ds.classes.tolist() == list(range(10))
    assert np.bincount(ds.labels).tolist() == [200] * 10
    assert ds.views["pix"].shape == (2000, 1, 16, 15)
    assert {name: ds.views[name].shape[1] for name in MFEAT_VIEWS if name != "pix"} == {
        name: d for name, d in MFEAT_VIEWS.items() if name != "pix"
    }
