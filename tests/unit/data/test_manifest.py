import os

import numpy as np
import pytest

from mmocc.datasets import load_manifest

# every test here gets MMOCC_CACHE_DIR inside tmp_path, so none writes the user cache
pytestmark = pytest.mark.usefixtures("ds_cache_dir")


@pytest.fixture
def manifest(tmp_path, ds_write_image):
    """A manifest of 4 two-view samples, images in img/<group>/."""
    rows = ["sample_id,label,group,left,right,note"]
    for i in range(4):
        group = f"g{i // 2}"
        ds_write_image(tmp_path / "img" / group / f"{i}_l.png", value=i)
        ds_write_image(tmp_path / "img" / group / f"{i}_r.png", value=10 + i)
        rows.append(f"s{i},{i % 2},{group},img/{group}/{i}_l.png,img/{group}/{i}_r.png,n{i}")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def rewrite(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def test_load_selected_views(manifest, ds_cache_dir):
    ds = load_manifest(manifest, views=["right", "left"], size=8, mode="L", cache_dir=ds_cache_dir)
    assert ds.view_names == ["right", "left"]
    assert ds.views["left"].shape == (4, 1, 8, 8) and ds.views["left"].dtype == np.uint8
    assert ds.labels.tolist() == [0, 1, 0, 1] and ds.labels.dtype.kind == "i"
    assert ds.ids.tolist() == ["s0", "s1", "s2", "s3"]
    assert ds.groups.tolist() == ["g0", "g0", "g1", "g1"]
    assert ds.metadata["note"].tolist() == ["n0", "n1", "n2", "n3"]
    assert not np.array_equal(ds.views["left"][0], ds.views["right"][0])


def test_default_views_are_all_non_reserved_columns(tmp_path, ds_write_image, ds_cache_dir):
    ds_write_image(tmp_path / "a.png")
    ds_write_image(tmp_path / "b.png", value=3)
    (tmp_path / "m.csv").write_text("\ufefflabel,top,sample_id,side\ncat,a.png,x,b.png\n")
    ds = load_manifest(tmp_path / "m.csv", size=4, cache_dir=ds_cache_dir)
    assert ds.view_names == ["top", "side"]
    assert ds.labels.tolist() == ["cat"] and ds.groups is None


def test_second_load_uses_the_cache(manifest, ds_cache_dir, monkeypatch):
    from mmocc.data import images

    first = load_manifest(manifest, views=["left", "right"], size=8, cache_dir=ds_cache_dir)
    monkeypatch.setattr(images, "decode_image", lambda *a: pytest.fail("decoded on a cache hit"))
    second = load_manifest(manifest, views=["left", "right"], size=8, cache_dir=ds_cache_dir)
    assert np.array_equal(first.views["right"], second.views["right"])


def test_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("id,label,left\nx,1,a.png\n")
    with pytest.raises(ValueError, match=r"missing column 'sample_id'"):
        load_manifest(tmp_path / "m.csv")


def test_unknown_view(manifest):
    with pytest.raises(ValueError, match=r"\['top'\] not found"):
        load_manifest(manifest, views=["top"])


def test_duplicate_ids(manifest):
    rewrite(manifest, "s3,", "s1,")
    with pytest.raises(ValueError, match="line 5: duplicate sample_id 's1' \\(first on line 3\\)"):
        load_manifest(manifest, views=["left", "right"])


@pytest.mark.parametrize("prefix", ["../img/", "sub/../../img/", "ABSOLUTE"])
def test_paths_outside_the_manifest_folder_are_read(manifest, prefix):
    # A manifest points at the user's image store, wherever it is: here one folder up, or absolute.
    inner = manifest.parent / "lists" / "manifest.csv"
    inner.parent.mkdir()
    prefix = f"{manifest.parent}/img/" if prefix == "ABSOLUTE" else prefix
    inner.write_text(manifest.read_text().replace("img/", prefix))
    moved = load_manifest(inner, views=["left", "right"], size=8)
    here = load_manifest(manifest, views=["left", "right"], size=8)
    assert np.array_equal(moved.views["left"], here.views["left"])
    assert moved.paths["left"].tolist() == here.paths["left"].tolist()


def test_missing_file_names_the_row(manifest, ds_cache_dir):
    (manifest.parent / "img" / "g1" / "2_r.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"line 4 \(sample_id 's2'\), view 'right': file not found"):
        load_manifest(manifest, views=["left", "right"], cache_dir=ds_cache_dir)
    assert not ds_cache_dir.exists()


def test_truncated_image_names_the_file(manifest, ds_cache_dir, ds_write_image):
    path = ds_write_image(manifest.parent / "img" / "g0" / "0_l.png", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"line 2 .*view 'left': cannot read image .*0_l\.png"):
        load_manifest(manifest, views=["left", "right"], cache_dir=ds_cache_dir)
    assert not ds_cache_dir.exists()


def test_skip_drops_bad_samples_with_one_warning(manifest, ds_cache_dir):
    (manifest.parent / "img" / "g1" / "2_r.png").unlink()
    (manifest.parent / "img" / "g0" / "1_l.png").write_bytes(b"not an image")
    rewrite(manifest, "img/g1/3_l.png", "")
    with pytest.warns(UserWarning) as record:
        ds = load_manifest(manifest, views=["left", "right"], on_error="skip", cache_dir=ds_cache_dir)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 3" in message
    assert "2_r.png" in message and "1_l.png" in message and "'s3'" in message
    assert ds.ids.tolist() == ["s0"]
    assert ds.groups.tolist() == ["g0"] and ds.metadata["note"].tolist() == ["n0"]
    assert not ds_cache_dir.exists()


def test_skip_with_nothing_left(manifest, ds_cache_dir):
    for path in (manifest.parent / "img").rglob("*_l.png"):
        path.unlink()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable samples"):
        load_manifest(manifest, views=["left"], on_error="skip", cache_dir=ds_cache_dir)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty manifest"),
        ("sample_id,label,left\n", "lists no samples"),
        ("sample_id,label\nx,1\n", "no view columns"),
        ("sample_id,label,left\nx,1\n", "line 2: expected 3 fields, got 2"),
        ("sample_id,label,left\nx,,a.png\n", "line 2: empty label"),
        ("sample_id,label,left,left\n", "duplicate column"),
        ("sample_id,left,\nx,a.png,\n", "m.csv: column 3 of the header has no name"),
        (
            "sample_id,left\nx," + "f" * 200_000 + "\n",
            "m.csv line 2: malformed CSV: field larger than field limit",
        ),
        (
            "sample_id,left\nx,a\0.png\n",
            r"m.csv line 2 \(sample_id 'x'\), view 'left': path 'a\\x00.png' contains a NUL",
        ),
        (
            "\ufeffsample_id,left\nx\n".encode("utf-16"),
            "m.csv: not UTF-8: byte 0xff at offset 0 .*it looks like UTF-16",
        ),
    ],
)
def test_malformed_manifests(tmp_path, text, match):
    path = tmp_path / "m.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=match):
        load_manifest(path)


def test_a_byte_order_mark_is_allowed(manifest, ds_cache_dir):
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    assert len(load_manifest(manifest, views=["left", "right"], size=4, cache_dir=ds_cache_dir)) == 4


def test_a_manifest_row_naming_a_pipe_or_folder_does_not_hang(manifest, ds_cache_dir):
    os.mkfifo(manifest.parent / "pipe.png")
    rewrite(manifest, "img/g0/0_l.png", "pipe.png")
    with pytest.raises(
        ValueError,
        match=r"line 2 \(sample_id 's0'\), view 'left': cannot read image .*pipe.png: "
        "OSError: .*not a regular file",
    ):
        load_manifest(manifest, views=["left", "right"], size=4, cache_dir=ds_cache_dir)
    rewrite(manifest, "pipe.png", "img")
    with pytest.raises(ValueError, match="img: OSError: .*not a regular file"):
        load_manifest(manifest, views=["left", "right"], size=4, cache_dir=ds_cache_dir)


def test_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_manifest(tmp_path / "none.csv")


def test_label_column_is_optional(manifest, ds_cache_dir):
    text = manifest.read_text().splitlines()
    header = text[0].split(",")
    drop = header.index("label")
    rows = [",".join(cell for i, cell in enumerate(line.split(",")) if i != drop) for line in text]
    manifest.write_text("\n".join(rows) + "\n")
    ds = load_manifest(manifest, views=["left", "right"], size=8, cache_dir=ds_cache_dir)
    assert ds.labels is None and not ds.is_labelled and len(ds) == 4
    assert "unlabelled" in repr(ds)
    with pytest.raises(ValueError, match="needs labels, but the data is unlabelled"):
        ds.require_labels("a one-class split")


def test_paths_name_the_source_files(manifest, ds_cache_dir):
    ds = load_manifest(manifest, views=["left", "right"], size=8, cache_dir=ds_cache_dir)
    assert ds.paths["left"][1] == str(manifest.parent / "img" / "g0" / "1_l.png")
    assert ds[np.array([3])].paths["right"].tolist() == [str(manifest.parent / "img" / "g1" / "3_r.png")]
    assert list(ds.select_views("right").paths) == ["right"]


def test_mode_auto_detects_greyscale(tmp_path, ds_write_image, ds_cache_dir):
    for i in range(2):
        ds_write_image(tmp_path / f"{i}_g.png", value=i, mode="L")
        ds_write_image(tmp_path / f"{i}_c.png", value=i, mode="RGB")
    (tmp_path / "grey.csv").write_text("sample_id,v\na,0_g.png\nb,1_g.png\n")
    (tmp_path / "colour.csv").write_text("sample_id,v\na,0_c.png\nb,1_c.png\n")
    assert load_manifest(tmp_path / "grey.csv", size=8).views["v"].shape == (2, 1, 8, 8)
    assert load_manifest(tmp_path / "colour.csv", size=8).views["v"].shape == (2, 3, 8, 8)
    assert load_manifest(tmp_path / "grey.csv", size=8, mode="RGB").views["v"].shape == (2, 3, 8, 8)
