"""table.md: one narrow table per metric, and the P@n of a random ranking stated under P@n."""

import itertools
from pathlib import Path

import pytest

from mmocc.evaluation.config import load_config
from mmocc.evaluation.metrics import METRIC_NAMES
from mmocc.evaluation.report import markdown_report

PAPER_TABLE1 = Path(__file__).resolve().parents[3] / "configs" / "paper_table1.toml"
NORMALS = [f"obj{k}" for k in range(1, 21)]


@pytest.fixture
def paper():
    cfg = load_config(PAPER_TABLE1)
    rows = [
        {"size": 32, "normal": normal, "model": model, "seed": seed, "metric": metric, "value": 0.5}
        for normal, model, seed, metric in itertools.product(NORMALS, cfg.models, cfg.seeds, METRIC_NAMES)
    ]
    return cfg, rows, {"source": "turntable:coil-20-proc", "n_samples": 720}


def test_paper_table_one_lines_stay_narrow(paper):
    cfg, rows, summary = paper
    shares = {(32, normal): 0.95 for normal in NORMALS}
    markdown = markdown_report(cfg, rows, {32: NORMALS}, summary, shares)
    assert max(len(line) for line in markdown.splitlines()) < 110
    assert "| Normal class | multimodal | unimodal_left | unimodal_right | Anomaly share |" in markdown
    assert "| obj7 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.950 |" in markdown
    assert "| **Average** | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 |" in markdown


def test_p_at_n_note_without_shares_is_generic(paper):
    cfg, rows, summary = paper
    markdown = markdown_report(cfg, rows, {32: NORMALS}, summary)
    assert "Anomaly share" not in markdown
    note = markdown.split("## P@n")[1].split("## ROC AUC")[0]
    assert "A random ranking gets\nP@n ≈ the share of anomalies in the test set, so only P@n above" in note
