"""``mmocc export`` and the commands that read an ``.onnx`` export, the no-torch scoring path included."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason='the ONNX export needs onnxruntime: pip install "mmocc[onnx]"')
pytest.importorskip("onnx", reason='the ONNX export needs onnx: pip install "mmocc[onnx]"')

from mmocc.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--epochs", "1", "-p", "filters=[4,4]", "--threads", "1"]

NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, NoTorch())
    from mmocc.cli import main

    codes = []
    for args in json.loads(sys.argv[1]):
        try:
            main(args)
        except SystemExit as exc:
            codes.append(exc.code)
    print(json.dumps({"codes": codes, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
    """
)


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A folder data set of 2 labels x 8 samples, a patch model trained on one, and its export."""
    root = tmp_path_factory.mktemp("onnx_cli")
    rng = np.random.default_rng(0)
    for label, offset in (("bee", 80), ("fly", 160)):
        for i in range(8):
            for view in ("left", "right"):
                path = root / "data" / label / f"s{i}" / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((rng.integers(0, 60, (12, 12)) + offset).astype(np.uint8)).save(path)
    args = ["train", "--data", root / "data", "--normal", "bee", "--size", "8", "--preset", "patch", *TINY]
    args += ["--holdout", "0.25"]  # keeps normal samples out, for evaluate
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in [*args, "--out", root / "m.mmocc", "-q"]])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in ["export", root / "m.mmocc", "--out", root / "m.onnx", "-q"]])
    assert exit_info.value.code == 0
    return root


def test_export_prints_the_parity_check_and_checks_real_data(exported, capsys):
    code, _, err = run_main(
        capsys,
        "export",
        exported / "m.mmocc",
        "--out",
        exported / "c.onnx",
        "--check-data",
        exported / "data",
    )
    assert code == 0, err
    assert "parity on 16 samples (16 of the 16 samples of" in err and "passed" in err
    code, _, err = run_main(
        capsys,
        "export",
        exported / "m.mmocc",
        "--out",
        exported / "d.onnx",
        "--check-data",
        exported / "data",
        "--check-samples",
        "5",
    )
    assert code == 0 and "parity on 5 samples (5 of the 16 samples of" in err
    code, out, _ = run_main(capsys, "info", exported / "c.onnx", "--json")
    record = json.loads(out)
    assert record["parity"]["samples"] == 16 and record["parity"]["passed"]
    assert [spec["name"] for spec in record["view_specs"]] == ["left", "right"]
    code, out, _ = run_main(capsys, "info", exported / "c.onnx")
    assert "ONNX export" in out and "map_left" in out and "passed" in out


def test_score_of_the_export_equals_score_of_the_model(exported, capsys):
    for model, out in (("m.mmocc", "a.csv"), ("m.onnx", "b.csv")):
        code, _, err = run_main(
            capsys, "score", exported / model, "--data", exported / "data", "--out", exported / out
        )
        assert code == 0, err
    torch_rows, onnx_rows = read_csv(exported / "a.csv"), read_csv(exported / "b.csv")
    assert list(onnx_rows[0]) == list(torch_rows[0])
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert {k: v for k, v in a.items() if k != "score" and not k.startswith("score_")} == {
            k: v for k, v in b.items() if k != "score" and not k.startswith("score_")
        }
        for key in [k for k in a if k == "score" or k.startswith("score_")]:
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4, abs=1e-5)


def test_scoring_an_export_never_imports_torch(exported, capsys):
    commands = [
        [
            "score",
            str(exported / "m.onnx"),
            "--data",
            str(exported / "data"),
            "--out",
            str(exported / "n.csv"),
        ],
        [
            "report",
            str(exported / "m.onnx"),
            "--data",
            str(exported / "data"),
            "--out",
            str(exported / "n.html"),
        ],
        ["evaluate", str(exported / "m.onnx"), "--data", str(exported / "data"), "--normal", "bee", "-q"],
        ["info", str(exported / "m.onnx")],
    ]
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=exported,
        env={"PATH": "/usr/bin:/bin", "MMOCC_CACHE_DIR": str(exported / "cache"), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record == {"codes": [0, 0, 0, 0], "torch": []}, result.stderr
    with pytest.raises(SystemExit):  # the same command in this process, where torch is imported
        main(
            [
                "score",
                str(exported / "m.onnx"),
                "--data",
                str(exported / "data"),
                "--out",
                str(exported / "p.csv"),
            ]
        )
    assert read_csv(exported / "n.csv") == read_csv(exported / "p.csv")
    assert "map" in (exported / "n.html").read_text(encoding="utf-8")


def test_export_refuses_what_is_not_a_model_file(exported, capsys):
    code, _, err = run_main(capsys, "export", exported / "m.onnx", "--out", exported / "x.onnx")
    assert code == 2 and "is an ONNX export already; only a MultimodalOCC model file exports" in err
    assert not (exported / "x.onnx").exists()


def test_score_of_a_broken_export_fails_in_one_line(exported, capsys):
    broken = exported / "broken.onnx"
    broken.write_bytes((exported / "m.onnx").read_bytes()[:1000])
    code, _, err = run_main(capsys, "score", broken, "--data", exported / "data", "--out", exported / "z.csv")
    assert code == 2 and "is not a readable ONNX model" in err and len(err.strip().splitlines()) == 1
    assert not (exported / "z.csv").exists()
