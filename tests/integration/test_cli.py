"""The ``mmocc`` command: each subcommand end to end through ``python -m mmocc``.

Every subprocess pays the import of torch, so the happy paths go through the
console script once each and the error cases run ``mmocc.cli.main``
in-process, except a few that check the real process's stderr and status.
"""

import csv
import io
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


@pytest.fixture(scope="module")
def held_model(workdir):
    """A model trained with --holdout: a third of the 'bee' samples stay out for evaluate."""
    result = mmocc(
        workdir,
        "train",
        "--data",
        "data",
        "--normal",
        "bee",
        "--holdout",
        "0.34",
        "--size",
        "8",
        *TINY,
        "--out",
        "held.mmocc",
    )
    assert result.returncode == 0, result.stderr
    assert "training on 5 samples of class 'bee', 3 held out" in result.stderr
    return workdir / "held.mmocc"


def test_version_and_help(workdir):
    result = mmocc(workdir, "--version")
    assert result.returncode == 0 and result.stdout.startswith("mmocc, version ")


@pytest.mark.parametrize("command", ["demo", "train", "score", "evaluate", "experiment", "info", "report"])
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
    assert "normal:     ['bee']" in result.stdout and "data:       data" in result.stdout
    assert "fingerprint " in result.stdout and "created:" in result.stdout
    assert str(workdir / "data" / "bee") in result.stdout  # the source folder of the views


def test_info_json(capsys, model):
    status, out, _ = run_main(capsys, "info", model, "--json")
    config = json.loads(out)
    assert status == 0 and [v["name"] for v in config["views"]] == ["left", "right"]
    assert config["n_samples_in"] == 8 and config["metadata"]["normal"] == ["bee"]
    assert config["metadata"]["holdout"] is None and len(config["training"]["fingerprint"]) == 64


def test_info_shows_the_holdout(capsys, held_model):
    status, out, _ = run_main(capsys, "info", held_model)
    assert status == 0 and "training:   5 samples; 3 normal samples held out (random split" in out
    status, out, _ = run_main(capsys, "info", held_model, "--json")
    assert len(json.loads(out)["metadata"]["holdout"]["held_out_ids"]) == 3


def test_score_streams_in_chunks(workdir, model):
    result = mmocc(
        workdir, "score", model, "--data", "data", "--out", "scores.csv", "--batch-size", "5", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(workdir / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "sample_id",
        "label",
        "score",
        "is_anomaly",
        "score_left",
        "score_right",
        "path_left",
        "path_right",
    ]
    assert rows[0]["label"] == "ant" and rows[0]["path_right"] == str(
        Path("data") / "ant" / "s0" / "right.png"
    )
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


def test_evaluate_leaves_the_training_samples_out(workdir, held_model):
    result = mmocc(workdir, "evaluate", held_model, "--data", "data", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n_normal"] == 3 and metrics["n_anomalies"] == 16 and metrics["normal"] == ["bee"]
    assert metrics["n_training_samples"] == 5 and not metrics["training_samples_included"]
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and "p_at_n" in metrics


def test_evaluate_refuses_when_every_normal_trained(capsys, workdir, model):
    status, _, err = run_main(capsys, "evaluate", model, "--data", workdir / "data")
    assert status == 2 and "no held-out normal samples: left out 8 samples the model was trained on" in err
    assert "train with --holdout" in err
    status, out, err = run_main(capsys, "evaluate", model, "--data", workdir / "data", "--include-training")
    assert status == 0 and "warning: 8 of these samples were used in training; metrics are optimistic" in err
    assert out.startswith("24 samples (8 normal of ['bee'], 16 anomalies)")


def test_evaluate_prints_a_table(capsys, workdir, held_model):
    status, out, _ = run_main(capsys, "evaluate", held_model, "--data", workdir / "data", "-q")
    assert status == 0 and out.splitlines()[0].startswith("19 samples (3 normal of ['bee'], 16 anomalies)")
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
    assert (
        "## Recall\n\n| Normal class | multi | knn |" in result.stdout and "| **Average** |" in result.stdout
    )
    assert "4 runs, all new\n" in result.stderr and "4 runs (0 reused)" in result.stderr
    assert {p.name for p in (workdir / "exp").iterdir()} == {"runs", "results.csv", "config.json", "table.md"}


def test_demo_quick(workdir):
    result = mmocc(workdir, "demo", "--quick", "--out", "demo", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# mmocc demo")
    assert "| Normal class | multimodal | dorsal_only | lateral_only | paper_multimodal |" in result.stdout
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
        (["train", "--data", "DATA", "--normal", "ant", "--holdout", "1.5", "--out", "m"], "--holdout"),
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
        (["train", "--data", "DATA", "--normal", "ant", "--out", "-"], "cannot write to standard output"),
        (
            ["score", "MODEL", "--data", "DATA", "--out", "LINK"],
            "link.csv: it is a symbolic link to nowhere.csv, not a regular file",
        ),
        (["experiment", "LATIN1", "--out", "e"], "latin1.toml: not UTF-8: byte 0xe9 at offset 2 (line 1)"),
    ],
)
def test_each_error_exits_2_with_one_line(capsys, tmp_path, workdir, model, args, message):
    config = tmp_path / "typo.toml"
    config.write_text('seed = [0]\n[models.m]\nkind = "mmocc"\n')
    (tmp_path / "latin1.toml").write_bytes(b"# \xe9\n")
    (tmp_path / "link.csv").symlink_to("nowhere.csv")
    values = {
        "DATA": workdir / "data",
        "MODEL": model,
        "CONFIG": config,
        "LINK": tmp_path / "link.csv",
        "LATIN1": tmp_path / "latin1.toml",
    }
    status, out, err = run_main(capsys, *[values.get(a, a) for a in args])
    assert status == 2 and out == ""
    assert err.startswith("mmocc: error: ") and err.count("\n") == 1
    assert message in err


def test_score_and_report_write_to_standard_output_with_a_dash(capsys, workdir, model):
    data = ["--data", workdir / "data", "-O", "cache=false", "-q"]
    status, out, err = run_main(capsys, "score", model, *data, "--out", "-")
    assert status == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == 24 and rows[0]["sample_id"] == "ant/s0"
    status, out, err = run_main(capsys, "report", model, *data, "--out", "-", "--top", "1", "--near", "1")
    assert status == 0 and err == ""
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert not Path("-").exists() and not (workdir / "-").exists()


def test_score_new_unlabelled_camera_folders(capsys, tmp_path, workdir, model):
    """The daily-use path: two camera folders of new images, no labels."""
    for k in range(3):
        for view in ("left", "right"):
            source = workdir / "data" / "fly" / f"s{k}" / f"{view}.png"
            target = tmp_path / f"cam_{view}" / f"part{k}.png"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(source.read_bytes())
    source = f"pairs:left={tmp_path / 'cam_left'},right={tmp_path / 'cam_right'}"
    old = os.umask(0o022)
    try:
        status, _, err = run_main(
            capsys, "score", model, "--data", source, "--out", tmp_path / "new.csv", "-q"
        )
    finally:
        os.umask(old)
    assert status == 0, err
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644
    with open(tmp_path / "new.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["sample_id"] for r in rows] == ["part0", "part1", "part2"] and "label" not in rows[0]
    assert rows[2]["path_left"] == str(tmp_path / "cam_left" / "part2.png")


def test_evaluate_refuses_unlabelled_data(capsys, tmp_path, workdir, model):
    for view in ("left", "right"):
        (tmp_path / f"{view}.png").write_bytes((workdir / "data" / "ant" / "s0" / f"{view}.png").read_bytes())
    (tmp_path / "m.csv").write_text("sample_id,left,right\na,left.png,right.png\n")
    status, _, err = run_main(capsys, "evaluate", model, "--data", tmp_path / "m.csv")
    assert status == 2 and "evaluate needs labels, but the data is unlabelled" in err


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_told_otherwise(capsys, monkeypatch, given, expected):
    """Spinning OpenMP threads collapse on shared cores; the CLI asks for passive waiting first."""
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", given)
    status, _, _ = run_main(capsys, "--version")
    assert status == 0 and os.environ["OMP_WAIT_POLICY"] == expected


def test_the_combined_preset_says_which_part_fired_in_score_and_report(capsys, workdir):
    status, _, err = run_main(
        capsys, "train", "--data", workdir / "data", "--normal", "bee", "--size", "8", "--preset",
        "combined", *TINY, "--out", workdir / "combined.mmocc",
    )
    assert status == 0, err
    out = workdir / "combined.csv"
    status, _, err = run_main(capsys, "score", workdir / "combined.mmocc", "--data", workdir / "data",
                              "--out", out, "-q")
    assert status == 0, err
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:8] == ["sample_id", "label", "score", "is_anomaly", "fired", "part_global",
                                 "part_local", "score_left"]
    assert {r["fired"] for r in rows} <= {"global", "local"}
    for row in rows:
        parts = {name: float(row[f"part_{name}"]) for name in ("global", "local")}
        assert float(row["score"]) == pytest.approx(sum(parts.values()) / 2, rel=1e-9, abs=1e-12)
        assert row["fired"] == max(parts, key=lambda name: parts[name])
    status, _, err = run_main(capsys, "report", workdir / "combined.mmocc", "--data", workdir / "data",
                              "--out", workdir / "combined.html", "-q")
    assert status == 0, err
    page = (workdir / "combined.html").read_text(encoding="utf-8")
    assert '<p class="fired">fired: <strong>' in page and 'data-key="part_local"' in page
    assert "(another object)" in page or "(a defect on this object)" in page


def test_score_has_no_part_columns_for_other_rules(capsys, workdir, model):
    status, out, err = run_main(capsys, "score", model, "--data", workdir / "data", "--out", "-", "-q")
    assert status == 0, err
    header = next(csv.reader(io.StringIO(out)))
    assert not {"fired", "part_global", "part_local"} & set(header)
