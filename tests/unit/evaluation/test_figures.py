"""Figures of an experiment: every axis labelled, a legend in every figure."""

import numpy as np
import pytest

from mmocc.evaluation import plots

matplotlib = pytest.importorskip("matplotlib")


def history(scale, epochs=3):
    return [
        {"epoch": e + 1, "loss": scale / (e + 1), "compactness": scale / (e + 1) ** 3, "reconstruction": 1.0}
        for e in range(epochs)
    ]


def legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]


def test_loss_figure_has_labels_and_a_legend_of_normal_classes():
    fig = plots.loss_figure("loss", [(str(c), history(c + 1.0)) for c in range(3) for _ in range(2)])
    assert [ax.get_title() for ax in fig.axes] == ["loss", "compactness", "reconstruction"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "loss (log scale)", "loss"]
    legend = fig.axes[0].get_legend()
    assert (
        legend_texts(legend) == ["0", "1", "2"] and legend.get_title().get_text() == "normal, a line per seed"
    )


def test_loss_figure_with_many_classes_keeps_a_legend_beside_the_panels(tmp_path):
    fig = plots.loss_figure("loss", [(f"obj{c:02d}", history(c + 1.0)) for c in range(25)])
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert legend_texts(fig.legends[0]) == [f"obj{c:02d}" for c in range(25)]
    colors = {tuple(line.get_color()) for line in fig.axes[0].get_lines()}
    assert len(colors) == 25
    plots._save(fig, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")


def test_histogram_figure_has_axis_labels_and_a_legend():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    panels = [(str(c), y, rng.normal(size=40) + y, 0.5) for c in range(3)]
    fig = plots.histogram_figure("scores", panels)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 3
    assert all(ax.get_xlabel() == "anomaly score" and ax.get_ylabel() == "density" for ax in shown)
    assert legend_texts(shown[0].get_legend()) == ["normal", "anomaly", "threshold"]


def test_roc_figure_has_axis_labels_and_a_legend():
    y = np.repeat([0, 1], 10)
    fig = plots.roc_figure("roc", {"knn": [(y, np.arange(20.0), 1.0)]})
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("false positive rate", "true positive rate")
    assert legend_texts(ax.get_legend()) == ["knn (AUC 1.000)"]
