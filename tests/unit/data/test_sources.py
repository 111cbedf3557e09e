"""One registry of source kinds: SRC parsing, options, planning and loading all read ``SOURCES``."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from mmocc.data import folder, manifest, mtile, mvtec, pairs, turntable
from mmocc.data.sources import SOURCE_KINDS, SOURCES, Source, SourceKind, load_source, parse_source
from mmocc.data.streaming import plan_source
from mmocc.deploy import batch

pytestmark = pytest.mark.usefixtures("ds_cache_dir")

PLANNED = {
    "manifest": (manifest.plan_manifest, manifest.load_manifest),
    "folder": (folder.plan_folder, folder.load_folder),
    "pairs": (pairs.plan_pairs, pairs.load_pairs),
    "mvtec": (mvtec.plan_mvtec, mvtec.load_mvtec),
    "mtile": (mtile.plan_mtile, mtile.load_mtile),
    "turntable": (turntable.plan_turntable, turntable.load_turntable),
}


@pytest.fixture
def files(tmp_path: Path, ds_write_image) -> dict[str, str]:
    """One SRC string per image kind, over a few tiny images."""
    rows = ["sample_id,label,left,right"]
    for i in range(3):
        ds_write_image(tmp_path / "img" / f"{i}_l.png", value=i)
        ds_write_image(tmp_path / "img" / f"{i}_r.png", value=9 + i)
        rows.append(f"m{i},{i % 2},img/{i}_l.png,img/{i}_r.png")
        ds_write_image(tmp_path / "tree" / f"c{i % 2}" / f"s{i}" / "top.png", value=i)
        ds_write_image(tmp_path / "cam_a" / f"p{i}.png", value=i)
        ds_write_image(tmp_path / "cam_b" / f"p{i}.png", value=5 + i)
    for pose in range(4):
        ds_write_image(tmp_path / "coil" / f"obj1__{pose}.png", value=pose, mode="L")
    mvtec = (("train", "good", "a"), ("train", "good", "b"), ("test", "good", "c"), ("test", "dent", "d"))
    for light in range(1, 7):
        ds_write_image(tmp_path / "mt" / "MT_Free" / "Imgs" / f"exp{light}_num_{10 + light}.jpg", value=light)
    for split, label, name in mvtec:
        ds_write_image(tmp_path / "mv" / split / label / f"{name}.png", value=ord(name) % 7)
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return {
        "manifest": str(tmp_path / "m.csv"),
        "folder": str(tmp_path / "tree"),
        "pairs": f"pairs:{tmp_path / 'cam_a'},{tmp_path / 'cam_b'}",
        "turntable": f"turntable:{tmp_path / 'coil'}",
        "mvtec": f"mvtec:{tmp_path / 'mv'}",
        "mtile": f"mtile:{tmp_path / 'mt'}",
    }


def test_every_kind_is_declared_once_in_order():
    kinds = ("manifest", "folder", "pairs", "turntable", "mvtec", "mtile", "mfeat", "synthetic")
    assert SOURCE_KINDS == kinds
    assert tuple(SOURCES) == SOURCE_KINDS
    assert all(isinstance(kind, SourceKind) and kind.name == name for name, kind in SOURCES.items())
    with pytest.raises(TypeError):
        SOURCES["extra"] = SOURCES["folder"]  # type: ignore[index]


def test_the_planners_are_the_registered_ones_with_the_loaders_parameters():
    planned = {name for name, kind in SOURCES.items() if kind.plan is not None}
    assert planned == set(PLANNED)
    for name, (plan, load) in PLANNED.items():
        assert SOURCES[name].plan is plan and SOURCES[name].load is load
        assert inspect.signature(plan).parameters.keys() == inspect.signature(load).parameters.keys()


def test_each_loader_documents_its_parameters_in_its_planner_only():
    for plan, load in PLANNED.values():
        assert f":func:`{plan.__name__}`" in load.__doc__
        assert "default 32" not in load.__doc__ and "default 32" in plan.__doc__


@pytest.mark.parametrize("kind", sorted(PLANNED))
def test_loading_is_decoding_the_plan(files, kind):
    options = {"size": 6, "cache": False, **({"angle_step": 90} if kind == "turntable" else {})}
    plan = plan_source(files[kind], **options)
    assert plan.listing is not None and plan.dataset is None
    loaded, decoded = load_source(files[kind], **options), plan.load()
    assert loaded.view_names == decoded.view_names and loaded.ids.tolist() == decoded.ids.tolist()
    for view in loaded.view_names:
        np.testing.assert_array_equal(loaded.views[view], decoded.views[view])


def test_kinds_without_a_planner_are_loaded_whole(tmp_path):
    plan = plan_source("synthetic:n_per_class=3,n_classes=2", size=8)
    assert plan.listing is None and plan.dataset is not None and len(plan) == 6
    assert Source("mfeat", tmp_path, f"mfeat:{tmp_path}").listing() is None  # reads no file


def test_bare_paths_are_told_by_the_kinds_that_claim_them(files, tmp_path):
    assert parse_source(files["manifest"]) == Source("manifest", Path(files["manifest"]), files["manifest"])
    assert parse_source(files["folder"]).kind == "folder"
    assert parse_source("synthetic") == Source("synthetic", None, "synthetic")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        ValueError, match="neither a .csv manifest nor a folder; prefix it with one of manifest:"
    ):
        parse_source(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="no such file 'missing.csv'"):
        parse_source("missing.csv")
    with pytest.raises(ValueError, match="needs a path: turntable:PATH"):
        parse_source("turntable:")
    with pytest.raises(ValueError, match="unknown data source kind 'foldr'.*did you mean 'folder'"):
        parse_source("foldr:x")


def test_options_are_the_registered_loaders_parameters(files):
    assert parse_source(files["manifest"]).option_names() == tuple(
        list(inspect.signature(manifest.load_manifest).parameters)[1:]
    )
    assert parse_source(files["pairs"]).option_names()[0] == "folders"
    assert "views" in parse_source(files["pairs"]).option_names()
    with pytest.raises(ValueError, match="the turntable source has no option 'view'.*options: delta_deg, "):
        parse_source(files["turntable"]).check_options({"view": 1})


def test_model_views_are_asked_of_the_kinds_that_select_them():
    selecting = {name for name, kind in SOURCES.items() if kind.model_views}
    assert selecting == {"manifest", "folder", "mvtec", "mfeat"}
    assert "views" in inspect.signature(pairs.load_pairs).parameters  # pairs renames, a model does not select


def _imports(module) -> list[tuple[str, str]]:
    """The (module, name) pairs a module imports from mmocc, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmocc"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith("mmocc")]
    return found


def test_plan_for_model_is_public_and_free_of_the_cli():
    from mmocc.cli import commands, report

    assert "Parameters" in (batch.plan_for_model.__doc__ or "")
    assert not [name for name, _ in _imports(batch) if name.startswith("mmocc.cli")]
    for module in (commands, report):
        assert ("mmocc.deploy.batch", "plan_for_model") in _imports(module)
        assert not [name for _, name in _imports(module) if name.startswith("_")]
