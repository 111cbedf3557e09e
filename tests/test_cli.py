"""The ``mmocc`` command: each subcommand end to end through ``python -m mmocc``.

Every subprocess pays the import of torch, so the happy paths go through the
console script once each and the error cases run ``mmocc.cli.main``
in-process, except a few that check the real process's stderr and status.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc.cli import main

TINY = ["--epochs", "1", "-p", "filters=[4,4]", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder data set root/<label>/<sample>/{left,right}.png of 3 labels x 8 samples."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for label in ("ant", "bee", "fly"):
        offset = {"ant": 0, "bee": 80, "fly": 160}[label]
        for i in range(8):
            for view in ("left", "right"):
                path = root / "data" / label / f"s{i}" / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = (rng.integers(0, 60, (12, 12, 3)) + offset).astype(np.uint8)
                Image.fromarray(pixels).save(path)
    return root


def mmocc(cwd, *args):
    env = {**os.environ, "MMOCC_CACHE_DIR": str(Path(cwd) / "cache")}
    env.pop("MMOCC_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "mmocc", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def model(workdir):
    """Train through the console script; shared by the commands that need a model."""
    result = mmocc(
        workdir, "train", "--data", "data", "--normal", "bee", "--size", "8", *TINY, "--out", "m.mmocc"
    )
    assert result.returncode == 0, result.stderr
    assert "training on 8 samples of class 'bee'" in result.stderr
    return workdir / "m.mmocc"


def test_version_and_help(workdir):
    result = mmocc(workdir, "--version")
    assert result.returncode == 0 and result.stdout.startswith("mmocc, version ")


@pytest.mark.parametrize("command", ["demo", "train", "score", "evaluate", "experiment", "info"])
def test_help_everywhere(capsys, command):
    status, out, _ = run_main(capsys, command, "--help")
    assert status == 0 and out.startswith(f"Usage: mmocc {command}") and "--quiet" in out


def test_train_writes_a_model(model):
    assert model.is_file() and not list(model.parent.glob("*.tmp"))


def test_info(workdir, model):
    result = mmocc(workdir, "info", model)
    assert result.returncode == 0, result.stderr
    assert "left" in result.stdout and "(3, 8, 8)" in result.stdout
    assert "training:   8 samples" in result.stdout and "threshold:" in result.stdout


def test_info_json(capsys, model):
    status, out, _ = run_main(capsys, "info", model, "--json")
    config = json.loads(out)
    assert status == 0 and [v["name"] for v in config["views"]] == ["left", "right"]
    assert config["n_samples_in"] == 8


def test_score_streams_in_chunks(workdir, model):
    result = mmocc(
        workdir, "score", model, "--data", "data", "--out", "scores.csv", "--batch-size", "5", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(workdir / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["sample_id", "score", "is_anomaly", "score_left", "score_right"]
    assert len(rows) == 24 and rows[0]["sample_id"] == "ant/s0"
    assert {r["is_anomaly"] for r in rows} <= {"0", "1"}
    import mmocc as package
    from mmocc.data.sources import load_source

    clf = package.load(model)
    data = load_source(str(workdir / "data"), size=8, cache=False)
    expected = clf.decision_function(data)
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, rtol=1e-6)
    left = clf.view_scores(data)["left"]
    np.testing.assert_allclose([float(r["score_left"]) for r in rows], left, rtol=1e-6)


def test_evaluate(workdir, model):
    result = mmocc(workdir, "evaluate", model, "--data", "data", "--normal", "bee", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n_normal"] == 8 and metrics["n_anomalies"] == 16
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and "p_at_n" in metrics


def test_evaluate_prints_a_table(capsys, workdir, model):
    status, out, _ = run_main(capsys, "evaluate", model, "--data", workdir / "data", "--normal", "bee", "-q")
    assert status == 0 and out.splitlines()[0].startswith("24 samples (8 normal, 16 anomalies)")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        "roc_auc",
        "p_at_n",
        "anomaly_recall",
        "normal_recall",
        "average_precision",
        "f1",
    ]


def test_experiment(workdir):
    (workdir / "tiny.toml").write_text(
        'seeds = [0]\nplots = false\n[data]\nsize = 8\n[split]\nnormal = ["ant", "fly"]\n'
        '[models.multi]\nkind = "mmocc"\nepochs = 1\nfilters = [4, 4]\n'
        '[models.knn]\nkind = "baseline"\ndetector = "knn"\n'
    )
    result = mmocc(workdir, "experiment", "tiny.toml", "--data", "data", "--out", "exp", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "| Normal class | multi Recall |" in result.stdout and "| **Average** |" in result.stdout
    assert "4 runs (0 reused)" in result.stderr
    assert {p.name for p in (workdir / "exp").iterdir()} == {"runs", "results.csv", "config.json", "table.md"}


def test_demo_quick(workdir):
    result = mmocc(workdir, "demo", "--quick", "--out", "demo", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# mmocc demo")
    assert "| multimodal Recall | multimodal P@n | multimodal ROC AUC | dorsal_only Recall" in result.stdout
    assert (workdir / "demo" / "table.md").is_file() and list((workdir / "demo" / "plots").glob("roc_*.png"))


def test_errors_are_one_line_with_status_2_from_the_console_script(workdir, model):
    result = mmocc(workdir, "train", "--data", "nowhere", "--normal", "a", "--out", "x.mmocc")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "mmocc: error: data source 'nowhere': no such file or folder\n"
    result = mmocc(workdir, "score", model, "--data", "synthetic:n_per_class=4,size=8", "--out", "s.csv")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "view(s) ['left', 'right'] missing" in result.stderr and not (workdir / "s.csv").exists()
    result = mmocc(workdir, "info", model, "--debug", "--jsn")
    assert result.returncode == 2 and "Did you mean '--json'?" in result.stderr


def test_debug_shows_the_traceback(capsys, workdir):
    with pytest.raises(FileNotFoundError):
        main(["train", "--data", str(workdir / "nowhere"), "--normal", "a", "--out", "x", "--debug"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "turntabel:x", "--normal", "a", "--out", "m"], "did you mean 'turntable'?"),
        (
            ["train", "--data", "DATA", "--normal", "wasp", "--out", "m"],
            "label 'wasp' is not in the data; labels: ant, bee, fly",
        ),
        (
            ["train", "--data", "DATA", "--normal", "ant", "--epoch", "1", "--out", "m"],
            "Did you mean '--epochs'?",
        ),
        (
            ["train", "--data", "DATA", "--normal", "ant", "-p", "filter=[4]", "--out", "m"],
            "did you mean 'filters'?",
        ),
        (
            ["train", "--data", "DATA", "--normal", "ant", "--views", "lft", "--out", "m"],
            "did you mean 'left'?",
        ),
        (
            ["train", "--data", "DATA", "--normal", "ant", "-O", "sise=8", "--out", "m"],
            "did you mean 'size'?",
        ),
        (["train", "--data", "DATA", "--normal", "ant", "--out"], "Option '--out' requires an argument"),
        (["score", "MODEL", "--data", "DATA", "-O", "size=16", "--out", "s.csv"], "does not match the shape"),
        (["evaluate", "MODEL", "--data", "DATA", "--normal", "wasp"], "label 'wasp' is not in the data"),
        (["score", "missing.mmocc", "--data", "DATA", "--out", "s.csv"], "'missing.mmocc' does not exist"),
        (["info", "CONFIG"], "not a readable mmocc model file"),
        (
            ["experiment", "CONFIG", "--out", "e"],
            "unknown key 'seed' in the top level; did you mean 'seeds'?",
        ),
        (["experiment", "missing.toml", "--out", "e"], "'missing.toml' does not exist"),
        (
            ["evaluate", "MODEL", "--data", "DATA", "--normal", "ant", "--device", "gpu9"],
            "'gpu9' is not a valid torch device",
        ),
        (["trian"], "No such command 'trian'. Did you mean 'train'?"),
    ],
)
def test_each_error_exits_2_with_one_line(capsys, tmp_path, workdir, model, args, message):
    config = tmp_path / "typo.toml"
    config.write_text('seed = [0]\n[models.m]\nkind = "mmocc"\n')
    values = {"DATA": workdir / "data", "MODEL": model, "CONFIG": config}
    status, out, err = run_main(capsys, *[values.get(a, a) for a in args])
    assert status == 2 and out == ""
    assert err.startswith("mmocc: error: ") and err.count("\n") == 1
    assert message in err
