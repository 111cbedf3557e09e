"""The HTML report: its structure (parsed with the standard library), escaping, and ``mmocc report``."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmocc import MultimodalOCC
from mmocc.cli import main
from mmocc.cli.main import cli
from mmocc.data.dataset import MultiViewDataset
from mmocc.datasets import make_synthetic
from mmocc.evaluation.html import (
    build_report,
    heat_overlay,
    histogram_svg,
    select_cards,
    to_display,
    write_report,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MALICIOUS = "<script>alert(1)</script>"


class ReportParser(HTMLParser):
    """Collects what the tests check: table rows and headers, images, svg, scripts, text."""

    def __init__(self) -> None:
        super().__init__()
        self.in_tbody = False
        self.rows: list[list[str]] = []
        self.headers: list[str] = []
        self.images: list[dict[str, str]] = []
        self.cards: list[str] = []
        self.tags: dict[str, int] = {}
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.in_cell = False

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes += attributes.values()
        if tag == "tbody":
            self.in_tbody = True
        elif tag == "tr" and self.in_tbody:
            self.rows.append([])
        elif tag == "td" and self.in_tbody:
            self.rows[-1].append("")
            self.in_cell = True
        elif tag == "th" and "data-key" in attributes:
            self.headers.append(attributes["data-key"])
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "article":
            self.cards.append(attributes.get("class", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_tbody = False
        elif tag == "td":
            self.in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self.in_cell:
            self.rows[-1][-1] += data

    def image_count(self, kind: str) -> int:
        return sum(kind in image.get("class", "").split() for image in self.images)


def parse(html: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_per_class=20, n_classes=2, size=16, seed=0)


@pytest.fixture(scope="module")
def patch_model(data):
    """A model whose score rule gives anomaly maps."""
    return MultimodalOCC(preset="patch", epochs=1, filters=(8, 4), random_state=0).fit(data[data.labels == 0])


@pytest.fixture(scope="module")
def knn_model(data):
    """A model of the default preset: per-view scores, no anomaly maps."""
    return MultimodalOCC(epochs=1, filters=(8, 4), random_state=0).fit(data[data.labels == 0])


def expected_cards(clf, dataset, top_k, n_near):
    scores = clf.decision_function(dataset)
    n_above = int((scores > clf.threshold_).sum())
    return min(top_k, n_above) + min(n_near, len(dataset) - n_above)


def unlabelled(dataset, ids=None, paths=None):
    return MultiViewDataset(dataset.views, ids=ids, paths=paths)


def test_report_with_maps_shows_cards_overlays_histogram_and_every_row(patch_model, data):
    html = build_report(patch_model, data, top_k=3, n_near=2, source="synthetic", model_path="m.mmocc")
    page = parse(html)
    n_cards = expected_cards(patch_model, data, 3, 2)
    assert n_cards == 5
    assert len(page.cards) == n_cards
    assert page.image_count("thumb") == n_cards * 2
    assert page.image_count("heat") == n_cards * 2
    assert len(page.rows) == len(data)
    assert page.tags["svg"] == 1 and "anomaly score" in page.text and "samples" in page.text
    assert page.headers == ["sample_id", "label", "score", "is_anomaly", "score_dorsal", "score_lateral"]
    assert {"m.mmocc", "synthetic", "patch / patch"} <= set(page.text)
    assert "20 of these samples (optimistic scores)" in page.text  # the training normals are in data
    assert any(text.endswith("(from train)") for text in page.text)


def test_report_cards_list_anomalies_by_score_then_normals_below_the_threshold(patch_model, data):
    page = parse(build_report(patch_model, data, top_k=40, n_near=40))
    scores = patch_model.decision_function(data)
    n_above = int((scores > patch_model.threshold_).sum())
    assert page.cards == ["card anomaly"] * n_above + ["card normal"] * (len(data) - n_above)
    flags = [row[3] for row in page.rows]
    assert flags.count("yes") == n_above and flags.count("no") == len(data) - n_above


def test_report_of_a_model_without_maps_has_no_overlays(knn_model, data):
    page = parse(build_report(knn_model, data, top_k=2, n_near=3))
    n_cards = expected_cards(knn_model, data, 2, 3)
    assert page.image_count("thumb") == n_cards * 2
    assert page.image_count("heat") == 0
    assert "score_dorsal" in page.headers


def test_report_is_self_contained(patch_model, data):
    html = build_report(patch_model, data, top_k=2, n_near=1)
    page = parse(html)
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html
    assert page.tags["script"] == 1 and page.tags["style"] == 1 and "link" not in page.tags
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
    pixels = Image.open(io.BytesIO(base64.b64decode(page.images[0]["src"].split(",", 1)[1])))
    assert pixels.size == (16, 16)
    assert (page.images[0]["width"], page.images[0]["height"]) == ("128", "128")


def test_report_embeds_the_stylesheet_and_script_shipped_in_the_package(knn_model, data):
    package = resources.files("mmocc.evaluation.html")
    css = package.joinpath("report.css").read_text(encoding="utf-8")
    js = package.joinpath("report.js").read_text(encoding="utf-8")
    assert 'th[aria-sort="ascending"]' in css and "function sortTable" in js
    html = build_report(knn_model, data, top_k=1, n_near=0)
    assert html.count(f"<style>\n{css}</style>") == 1
    assert html.count(f"<script>\n{js}</script>") == 1


def test_report_on_unlabelled_data_omits_labels_and_shows_source_files(knn_model, data):
    paths = {view: np.array([f"/data/{view}/{i}.png" for i in range(len(data))]) for view in data.view_names}
    dataset = unlabelled(data, paths=paths)
    page = parse(build_report(knn_model, dataset, top_k=2, n_near=2))
    assert "label" not in page.headers
    assert not any(text.startswith("label ") for text in page.text)
    assert page.headers[-2:] == ["path_dorsal", "path_lateral"]
    assert len(page.rows) == len(data)
    first = page.rows[0]
    assert first[0] == "0" and first[-2:] == ["/data/dorsal/0.png", "/data/lateral/0.png"]
    assert "unknown" in page.text


def test_report_escapes_sample_ids_and_paths(knn_model, data):
    ids = [MALICIOUS if i == 0 else f"s{i}" for i in range(len(data))]
    paths = {"dorsal": np.array([f'"/x&y/<{i}>.png' for i in range(len(data))])}
    html = build_report(knn_model, unlabelled(data, ids=ids, paths=paths), top_k=40, n_near=40)
    assert MALICIOUS not in html
    page = parse(html)
    assert page.tags["script"] == 1
    assert any(row[0] == MALICIOUS for row in page.rows)
    assert any(MALICIOUS in text for text in page.text if text.startswith("id "))
    assert '"/x&y/<0>.png' in page.attributes


def test_report_shows_a_placeholder_for_vector_views(data):
    rng = np.random.default_rng(0)
    mixed = MultiViewDataset(
        {"dorsal": data.views["dorsal"], "size": rng.normal(size=(len(data), 4)).astype(np.float32)},
        labels=data.labels,
    )
    clf = MultimodalOCC(epochs=1, filters=(8, 4), random_state=0).fit(mixed[mixed.labels == 0])
    page = parse(build_report(clf, mixed, top_k=2, n_near=2))
    n_cards = expected_cards(clf, mixed, 2, 2)
    assert page.image_count("thumb") == n_cards
    assert page.text.count("vector view (4)") == n_cards


@pytest.mark.parametrize(
    ("options", "message"), [({"top_k": 0}, "top_k must be >= 1"), ({"n_near": -1}, "n_near")]
)
def test_report_rejects_bad_card_counts(knn_model, data, options, message):
    with pytest.raises(ValueError, match=message):
        build_report(knn_model, data, **options)


def test_report_rejects_an_empty_data_set(knn_model, data):
    with pytest.raises(ValueError, match="no samples"):
        build_report(knn_model, data[np.zeros(len(data), bool)])


def test_select_cards_takes_anomalies_first_and_near_normals_below():
    scores = np.array([5.0, 1.0, 3.0, 0.5, 2.0, 2.0])
    top, near = select_cards(scores, 2.0, top_k=1, n_near=3)
    assert top.tolist() == [0]
    assert near.tolist() == [4, 5, 1]
    top, near = select_cards(scores, 10.0, top_k=4, n_near=0)
    assert top.size == 0 and near.size == 0


def test_histogram_svg_draws_one_bar_per_nonempty_bin_and_marks_the_threshold():
    scores = np.array([0.0, 0.1, 0.2, 5.0, 9.9, np.nan])
    svg = histogram_svg(scores, 4.0, bins=10)
    page = parse(svg)
    assert page.tags["rect"] == 3
    assert svg.count('class="above"') == 2 and svg.count('class="below"') == 1
    assert "τ = 4" in svg and "anomaly score" in svg
    assert parse(histogram_svg(np.full(3, 1.0), 1.0)).tags["rect"] == 1


def test_to_display_scales_floats_and_picks_channels():
    assert to_display(np.full((1, 2, 2), 7, np.int64)).tolist() == [[7, 7], [7, 7]]
    assert to_display(np.zeros((4, 2, 3), np.uint8)).shape == (2, 3, 3)
    assert to_display(np.full((2, 2), 0.3)).tolist() == [[0, 0], [0, 0]]


def test_heat_overlay_keeps_cold_pixels_and_paints_hot_ones():
    pixels = np.full((2, 2, 3), 100, np.uint8)
    blended = heat_overlay(pixels, np.array([[0.0, 0.5], [1.0, 2.0]]))
    assert blended[0, 0].tolist() == [100, 100, 100]
    assert blended[1, 0].tolist() == blended[1, 1].tolist() != [100, 100, 100]


def test_write_report_writes_utf8_and_creates_the_folder(tmp_path):
    target = tmp_path / "sub" / "report.html"
    write_report(target, "<p>τ</p>")
    assert target.read_text(encoding="utf-8") == "<p>τ</p>"


def test_cli_report_end_to_end(tmp_path, patch_model):
    model = tmp_path / "patch.mmocc"
    patch_model.save(model)
    out = tmp_path / "report.html"
    src = "synthetic:n_per_class=10,n_classes=2,size=16"
    args = ["report", str(model), "--data", src, "--out", str(out), "--top", "2", "--near", "1"]
    result = CliRunner().invoke(cli, [*args, "--title", "Beetles <2>", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"report of 20 samples written to {out}" in result.output
    page = parse(out.read_text(encoding="utf-8"))
    assert len(page.rows) == 20
    assert len(page.cards) == 3 and page.image_count("heat") == 6
    assert {src, str(model), "Beetles <2>"} <= set(page.text)


@pytest.mark.parametrize(("option", "value"), [("--top", "0"), ("--near", "-1")])
def test_cli_report_rejects_a_bad_count(tmp_path, capsys, option, value):
    model = tmp_path / "m.mmocc"
    model.write_bytes(b"")
    args = ["report", str(model), "--data", "synthetic", "--out", str(tmp_path / "r.html"), option, value]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("mmocc: error:") and option in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_report_help_imports_neither_numpy_nor_torch():
    code = (
        "import sys\nfrom mmocc.cli import main\n"
        "try:\n    main(['report', '--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        "print(sorted(m for m in ('numpy', 'torch', 'PIL') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
