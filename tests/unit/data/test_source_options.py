"""Loader options read from text: the ``views`` rename and the spelling of integer-like labels."""

import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmocc.cli import main
from mmocc.data.sources import find_label, load_source, parse_source
from mmocc.data.streaming import plan_source
from mmocc.data.view_map import view_map
from mmocc.datasets import load_folder, load_manifest, load_pairs
from mmocc.deploy.batch import model_data_options

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

TINY = ["--epochs", "1", "-p", "filters=[4,4]", "--threads", "1", "--size", "8", "-O", "cache=false"]


def write_manifest(
    folder: Path, write_image, columns: tuple[str, str], labels: list[str], offset: int = 0
) -> Path:
    """A manifest ``sample_id,label,<columns>`` of one two-view sample per label, images under img/."""
    rows = [f"sample_id,label,{columns[0]},{columns[1]}"]
    for i, label in enumerate(labels):
        for view in columns:
            write_image(folder / "img" / f"{offset + i}_{view}.png", value=offset + 7 * i + len(view))
        rows.append(
            f"s{offset + i},{label},img/{offset + i}_{columns[0]}.png,img/{offset + i}_{columns[1]}.png"
        )
    path = folder / f"{columns[0]}_{columns[1]}_{offset}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def left_right(tmp_path, ds_write_image) -> Path:
    return write_manifest(tmp_path, ds_write_image, ("left", "right"), ["a", "b", "a"])


# --- the views option, read on its own -------------------------------------------------------------


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        ("left:front,right:side", {"left": "front", "right": "side"}),
        (" left : front , side ", {"left": "front", "side": "side"}),
        ({"left": "front", "right": "side"}, {"left": "front", "right": "side"}),
        (["right", "left"], {"right": "right", "left": "left"}),
        ("left", {"left": "left"}),
        (None, None),
    ],
)
def test_view_map_forms(views, expected):
    assert view_map(views) == expected


@pytest.mark.parametrize(
    ("views", "match"),
    [
        ("left:front:x", r"malformed item 'left:front:x' in 'left:front:x'"),
        ("left:front,,right:side", r"malformed item '' in 'left:front,,right:side'"),
        ("left:", r"malformed item 'left:'"),
        (":front", r"malformed item ':front'"),
        ({"left": 1}, r"malformed item 'left': 1"),
        (["left", ""], r"malformed item '': ''"),
        ("left:front,right:front", r"view 'front' given twice, for columns 'left' and 'right'"),
        (["left", "left"], r"column 'left' given twice"),
        ("left:a,left:b", r"column 'left' given twice"),
    ],
)
def test_view_map_names_the_bad_item(views, match):
    with pytest.raises(ValueError, match=match):
        view_map(views)


def test_view_map_refuses_other_types():
    with pytest.raises(TypeError, match="views must be a list of names, a dict"):
        view_map(3)


# --- the views option of each source ----------------------------------------------------------------


@pytest.mark.parametrize("views", ["left:front,right:side", {"left": "front", "right": "side"}])
def test_manifest_columns_renamed(left_right, views):
    ds = load_manifest(left_right, views=views, size=8)
    plain = load_manifest(left_right, views=["left", "right"], size=8)
    assert ds.view_names == ["front", "side"] and not ds.metadata
    np.testing.assert_array_equal(ds.views["side"], plain.views["right"])
    assert ds.paths["front"].tolist() == plain.paths["left"].tolist()


def test_manifest_rename_keeps_a_column_under_its_name_and_leaves_the_rest_as_metadata(left_right):
    ds = load_manifest(left_right, views="right:side", size=8)
    assert ds.view_names == ["side"] and sorted(ds.metadata) == ["left"]
    assert load_manifest(left_right, views="right:side,left", size=8).view_names == ["side", "left"]


@pytest.mark.parametrize(
    ("views", "match"),
    [
        (
            "lft:front,right:side",
            r"view column\(s\) \['lft'\] not found; view columns are \['left', 'right'\]",
        ),
        ("left:front,right:front", r"view 'front' given twice"),
        ("left=front", r"view column\(s\) \['left=front'\] not found"),
        ("left:front;right:side", r"malformed item 'left:front;right:side'"),
    ],
)
def test_manifest_rename_errors_name_the_culprit(left_right, views, match):
    with pytest.raises(ValueError, match=match):
        load_manifest(left_right, views=views, size=8)


def test_folder_views_renamed(tmp_path, ds_write_image):
    for label in ("x", "y"):
        for view in ("top", "side"):
            ds_write_image(tmp_path / "tree" / label / "s0" / f"{view}.png", value=len(label + view))
    ds = load_folder(tmp_path / "tree", views={"top": "dorsal", "side": "lateral"}, size=6)
    plain = load_folder(tmp_path / "tree", size=6)
    assert ds.view_names == ["dorsal", "lateral"]
    np.testing.assert_array_equal(ds.views["lateral"], plain.views["side"])
    with pytest.raises(ValueError, match=r"differ from \['tp', 'side'\] \(missing \['tp'\]"):
        load_folder(tmp_path / "tree", views="tp:dorsal,side:lateral", size=6)


def test_pairs_views_renamed_and_selected(tmp_path, ds_write_image):
    for k in range(2):
        for cam in ("cam1", "cam2", "cam3"):
            ds_write_image(tmp_path / cam / f"{k}.png", value=k + len(cam))
    folders = [tmp_path / "cam1", tmp_path / "cam2", tmp_path / "cam3"]
    ds = load_pairs(folders, size=6, views="cam2:front,cam1:side")
    plain = load_pairs(folders, size=6)
    assert ds.view_names == ["front", "side"]
    np.testing.assert_array_equal(ds.views["front"], plain.views["cam2"])
    assert load_pairs(folders, size=6, views=["cam3"]).view_names == ["cam3"]
    with pytest.raises(ValueError, match=r"no camera folder for view\(s\) \['cam9'\]; the folders are views"):
        load_pairs(folders, size=6, views={"cam9": "front"})
    with pytest.raises(ValueError, match="view 'front' given twice"):
        load_pairs(folders, size=6, views="cam1:front,cam2:front")


def test_views_through_a_source_string_and_a_plan(left_right, tmp_path, ds_write_image):
    assert load_source(str(left_right), size=8, views="left:front,right:side").view_names == ["front", "side"]
    plan = plan_source(str(left_right), size=8, views={"left": "front", "right": "side"})
    assert list(plan.paths) == ["front", "side"] and plan.load().view_names == ["front", "side"]
    ds_write_image(tmp_path / "a" / "0.png")
    ds_write_image(tmp_path / "b" / "0.png")
    pairs = f"pairs:{tmp_path / 'a'},{tmp_path / 'b'}"
    assert load_source(pairs, size=8, views="a:front,b:side").view_names == ["front", "side"]


def test_model_data_options_keep_the_users_rename_and_leave_pairs_unselected(left_right, tmp_path):
    spec = SimpleNamespace(kind="image", shape=(1, 8, 8))
    clf = SimpleNamespace(
        view_specs_=[SimpleNamespace(name=name, **vars(spec)) for name in ("front", "side")]
    )
    source = parse_source(str(left_right))
    assert model_data_options(clf, source, {})["views"] == ["front", "side"]
    rename = {"views": "left:front,right:side"}
    assert model_data_options(clf, source, rename) == {"size": 8, "mode": "L", **rename}
    (tmp_path / "a").mkdir()
    assert "views" not in model_data_options(clf, parse_source(f"pairs:{tmp_path / 'a'}"), {})


# --- labels read from text keep their spelling unless they are plain integers -----------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["007", "008", "007"], ["007", "008", "007"]),
        (["7", "8", "7"], [7, 8, 7]),
        (["7", "07", "7"], ["7", "07", "7"]),
        (["+1", "2", "2"], ["+1", "2", "2"]),
        (["-3", "0", "0"], [-3, 0, 0]),
    ],
)
def test_manifest_labels_keep_their_spelling(tmp_path, ds_write_image, labels, expected):
    path = write_manifest(tmp_path, ds_write_image, ("left", "right"), labels)
    ds = load_manifest(path, size=8)
    assert ds.labels.tolist() == expected
    assert find_label(ds, labels[0]) == expected[0]


def test_manifest_groups_and_folder_labels_keep_their_spelling(tmp_path, ds_write_image):
    rows = ["sample_id,label,group,v"]
    for i, (label, group) in enumerate([("001", "01"), ("002", "02")]):
        ds_write_image(tmp_path / f"{i}.png", value=i)
        ds_write_image(tmp_path / "tree" / label / f"s{i}" / "v.png", value=i)
        rows.append(f"s{i},{label},{group},{i}.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    ds = load_manifest(tmp_path / "m.csv", size=8)
    assert ds.labels.tolist() == ["001", "002"] and ds.groups.tolist() == ["01", "02"]
    assert load_folder(tmp_path / "tree", size=8).labels.tolist() == ["001", "002"]


# --- through the command line -------------------------------------------------------------------------


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.usefixtures("one_torch_thread")
def test_a_model_trained_on_front_side_reads_left_right_columns(capsys, tmp_path, ds_write_image):
    train = write_manifest(tmp_path, ds_write_image, ("front", "side"), ["ant"] * 6 + ["bee"] * 2)
    new = write_manifest(tmp_path, ds_write_image, ("left", "right"), ["ant", "bee", "ant", "bee"], offset=50)
    model = tmp_path / "m.mmocc"
    status, _, err = run_main(
        capsys, "train", "--data", train, "--normal", "ant", *TINY, "--out", model, "-q"
    )
    assert status == 0, err

    status, _, err = run_main(capsys, "score", model, "--data", new, "-O", "cache=false", "--out", "-")
    assert status == 2 and "view column(s) ['front', 'side'] not found" in err and "'left', 'right'" in err

    rename = ["-O", "views=left:front,right:side", "-O", "cache=false", "-q"]
    status, out, err = run_main(capsys, "score", model, "--data", new, *rename, "--out", "-")
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [row["sample_id"] for row in rows] == ["s50", "s51", "s52", "s53"]
    assert rows[0]["path_front"].endswith("50_left.png") and rows[0]["path_side"].endswith("50_right.png")

    import mmocc

    plain = load_manifest(new, views=["left", "right"], size=8).views
    expected = mmocc.load(model).decision_function({"front": plain["left"], "side": plain["right"]})
    np.testing.assert_allclose([float(row["score"]) for row in rows], expected, rtol=1e-6)

    status, out, err = run_main(capsys, "evaluate", model, "--data", new, *rename, "--json")
    assert status == 0, err
    assert json.loads(out)["n_samples"] == 4 and json.loads(out)["normal"] == ["ant"]

    status, out, err = run_main(capsys, "report", model, "--data", new, *rename, "--out", "-", "--top", "1")
    assert status == 0, err
    assert out.startswith("<!DOCTYPE html>") and "s50" in out

    status, _, err = run_main(capsys, "score", model, "--data", new, "-O", "views=left:front:x", "--out", "-")
    assert status == 2 and "malformed item 'left:front:x'" in err and err.count("\n") == 1
