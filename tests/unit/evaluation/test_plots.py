"""Plots need the optional matplotlib; without it the error says how to install it or turn plots off."""

import sys

import pytest

from mmocc.cli import main
from mmocc.evaluation.plots import MatplotlibMissingError, require_matplotlib, write_plots
from mmocc.evaluation.runner import run_experiment

CONFIG = {
    "seeds": [0],
    "data": {"size": 8},
    "split": {"normal": [0]},
    "models": {"knn": {"kind": "baseline", "detector": "knn"}},
}
SRC = "synthetic:n_per_class=8,n_classes=2"


@pytest.fixture
def no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_missing_matplotlib_names_the_extra(no_matplotlib):
    with pytest.raises(MatplotlibMissingError, match=r'pip install "mmocc\[plots\]"') as info:
        require_matplotlib()
    assert isinstance(info.value, ImportError) and "--no-plots" in str(info.value)
    with pytest.raises(ImportError, match="plots = false"):
        write_plots(None, [], {}, [])


def test_experiment_with_plots_fails_before_any_run(no_matplotlib, tmp_path):
    with pytest.raises(MatplotlibMissingError):
        run_experiment({**CONFIG, "plots": True}, SRC, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    result = run_experiment({**CONFIG, "plots": False}, SRC, tmp_path / "out", progress=False)
    assert result.n_runs == 1 and not (tmp_path / "out" / "plots").exists()


def test_cli_reports_missing_matplotlib_on_one_line(no_matplotlib, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('seeds = [0]\n[split]\nnormal = [0]\n[models.knn]\nkind = "baseline"\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", str(config), "--data", SRC, "--out", str(tmp_path / "e"), "-q"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("mmocc: error: drawing figures needs matplotlib") and "mmocc[plots]" in err


def test_matplotlib_present():
    pytest.importorskip("matplotlib")
    assert require_matplotlib().figure.Figure is not None
