"""The report on defect data: ground-truth masks outlined over images and maps, the histogram by label."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmocc import MultimodalOCC
from mmocc.cli.main import cli
from mmocc.data.dataset import MultiViewDataset
from mmocc.evaluation.html import (
    OUTLINE_RGB,
    build_report,
    draw_outline,
    histogram_legend,
    histogram_svg,
    label_groups,
    mask_outline,
)
from mmocc.evaluation.html.images import outline_width

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MALICIOUS = "<script>alert(1)</script>"
HEIGHT, WIDTH = 12, 20
"""Images of the in-memory data are not square, so a transposed mask or map could not go unnoticed."""


class Page(HTMLParser):
    """What these tests read: images by alt text, histogram series, bars as (series, count), legend."""

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, np.ndarray] = {}
        self.series: list[dict[str, str]] = []
        self.bars: list[tuple[str, int]] = []
        self.legend: list[str] = []
        self.tags: dict[str, int] = {}
        self._where = ""
        self._series = ""

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        classes = attributes.get("class", "").split()
        if tag == "img":
            data = base64.b64decode(attributes["src"].split(",", 1)[1])
            self.images[attributes["alt"]] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        elif tag == "g" and "series" in classes:
            self.series.append(attributes)
            self._series = attributes["data-label"]
        elif tag == "title" and self._where == "rect":
            self._where = "title"
        elif tag == "rect":
            self._where = "rect"
        elif tag == "ul" and "hist-legend" in classes:
            self._where = "legend"
        elif tag == "li" and self._where == "legend":
            self.legend.append("")

    def handle_endtag(self, tag):
        if tag in ("rect", "ul"):
            self._where = ""
        elif tag == "g":
            self._series = ""

    def handle_data(self, data):
        if self._where == "title":
            self.bars.append((self._series, int(data.rsplit(": ", 1)[1])))
        elif self._where == "legend" and self.legend:
            self.legend[-1] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def cyan(pixels: np.ndarray) -> np.ndarray:
    """Where an RGB image has the outline's colour."""
    return (pixels == np.array(OUTLINE_RGB, np.uint8)).all(axis=-1)


@pytest.fixture(scope="module")
def data() -> MultiViewDataset:
    """Grey 12x20 textures: 20 good, 10 dents (a bright block); a second, vector view."""
    rng = np.random.default_rng(0)
    images = rng.integers(90, 130, (30, 1, HEIGHT, WIDTH)).astype(np.uint8)
    images[20:, :, 3:6, 12:16] = 255
    labels = np.array(["good"] * 20 + ["dent"] * 10)
    size = rng.normal(size=(30, 2)).astype(np.float32)
    return MultiViewDataset({"image": images, "size": size}, labels=labels, ids=[f"s{i}" for i in range(30)])


@pytest.fixture(scope="module")
def model(data) -> MultimodalOCC:
    return MultimodalOCC(preset="patch", epochs=1, filters=(8, 4), random_state=0).fit(data[:20])


@pytest.fixture(scope="module")
def hot_masks(data, model) -> np.ndarray:
    """Masks that are each dent's own map above its 80th percentile (empty for the good samples).

    The outline of such a mask traces a level line of the map: it lands where
    the map says only if mask and map align pixel for pixel.
    """
    maps = model.anomaly_maps(data)["image"]
    masks = maps >= np.quantile(maps, 0.8, axis=(1, 2), keepdims=True)
    masks[:20] = False
    return masks


def with_masks(data: MultiViewDataset, masks: np.ndarray) -> MultiViewDataset:
    return MultiViewDataset(data.views, labels=data.labels, ids=data.ids, masks={"image": masks})


def test_outline_is_exactly_the_boundary_of_a_known_mask():
    mask = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0, 0, 1, 1, 1, 1, 1, 0, 1],
            [0, 0, 1, 1, 1, 1, 1, 0, 1],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    expected = np.array(  # a mask pixel with a 4-neighbour outside the mask; beyond the edge is outside
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0, 0, 1, 1, 1, 1, 1, 0, 1],
            [0, 0, 1, 0, 0, 0, 1, 0, 1],
            [0, 0, 1, 0, 0, 0, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert np.array_equal(mask_outline(mask), expected)
    assert not mask_outline(np.zeros((4, 5), bool)).any()
    full = np.ones((4, 5), bool)
    assert np.array_equal(~mask_outline(full), np.pad(np.ones((2, 3), bool), 1, constant_values=False))


def test_outline_widens_with_the_downscale_of_large_images():
    assert [outline_width(n, n) for n in (16, 128, 129, 256, 512)] == [1, 1, 2, 2, 4]
    mask = np.zeros((10, 10), bool)
    mask[1:9, 1:9] = True
    band = mask_outline(mask, 2)
    inner = np.zeros((10, 10), bool)
    inner[3:7, 3:7] = True
    assert np.array_equal(band, mask & ~inner)


def test_draw_outline_paints_the_outline_only_and_refuses_another_size():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    outline = np.zeros((3, 4), bool)
    outline[1, 2] = True
    drawn = draw_outline(pixels, outline)
    assert drawn.shape == (3, 4, 3) and drawn[1, 2].tolist() == list(OUTLINE_RGB)
    assert np.array_equal(drawn[~outline], np.repeat(pixels[~outline][:, None], 3, axis=1))
    with pytest.raises(ValueError, match="does not fit"):
        draw_outline(pixels, outline.T)


def test_outline_and_map_align_pixel_for_pixel_in_the_report(data, model, hot_masks):
    plain = parse(build_report(model, data, top_k=40, n_near=40))
    masked = parse(build_report(model, with_masks(data, hot_masks), top_k=40, n_near=40))
    for i in range(20, 30):
        outline = mask_outline(hot_masks[i])
        assert outline.shape == (HEIGHT, WIDTH) and outline.any()
        for alt in (f"image of sample s{i}", f"anomaly map of image, sample s{i}"):
            shown, before = masked.images[f"{alt}, mask outlined"], plain.images[alt]
            assert shown.shape == (HEIGHT, WIDTH, 3)
            assert np.array_equal(cyan(shown), outline)  # the outline traces the map's own level line
            assert np.array_equal(shown[~outline], before[~outline])  # the map under it is unmoved


def test_no_outline_without_a_mask_or_with_an_empty_one(data, model, hot_masks):
    html = build_report(model, with_masks(data, hot_masks), top_k=40, n_near=40)
    page = parse(html)
    outlined = {alt for alt in page.images if alt.endswith(", mask outlined")}
    assert len(outlined) == 20  # the dents' image and map; the good samples' masks are empty
    for alt, pixels in page.images.items():
        assert cyan(pixels).any() == (alt in outlined)
    assert 'class="outline-key"' in html
    plain = build_report(model, data, top_k=40, n_near=40)
    assert 'class="outline-key"' not in plain and "mask outlined" not in plain
    assert not any(cyan(pixels).any() for pixels in parse(plain).images.values())


def series_counts(page: Page) -> dict[str, int]:
    return {series["data-label"]: int(series["data-count"]) for series in page.series}


def bar_totals(page: Page) -> dict[str, int]:
    totals: dict[str, int] = {}
    for label, count in page.bars:
        totals[label] = totals.get(label, 0) + count
    return totals


def test_histogram_has_one_series_per_label_with_the_right_counts():
    rng = np.random.default_rng(0)
    labels = np.array(["good"] * 50 + ["crack"] * 7 + ["hole"] * 3)
    scores = np.concatenate([rng.normal(0, 1, 50), rng.normal(4, 1, 10)])
    scores[-1] = np.nan  # left out of the bars, as without labels
    groups = label_groups(labels, normal=["good"])
    page = parse(histogram_svg(scores, 2.0, groups=groups))
    assert series_counts(page) == {"good (normal)": 50, "crack": 7, "hole": 2}
    assert bar_totals(page) == series_counts(page)
    assert [series["class"] for series in page.series] == ["series g0", "series g1", "series g2"]
    plain = parse(histogram_svg(scores, 2.0, bins=12))
    stacked = parse(histogram_svg(scores, 2.0, bins=12, groups=groups))
    assert sum(count for _, count in stacked.bars) == sum(count for _, count in plain.bars) == 59
    legend = parse(histogram_legend(groups)).legend
    assert legend == ["good (normal): 50", "crack: 7", "hole: 3"]


def test_histogram_of_many_labels_groups_normal_against_anomalous_or_keeps_the_largest():
    labels = np.repeat(np.arange(8), [30, 9, 8, 7, 6, 5, 4, 3])
    scores = np.linspace(0, 1, labels.size)
    known = parse(histogram_svg(scores, 0.5, groups=label_groups(labels, normal=[0])))
    assert series_counts(known) == {"normal (0)": 30, "anomalous (7 labels)": 42}
    unknown = parse(histogram_svg(scores, 0.5, groups=label_groups(labels)))
    assert series_counts(unknown) == {"0": 30, "1": 9, "2": 8, "3": 7, "4": 6, "other (3 labels)": 12}
    assert bar_totals(unknown) == series_counts(unknown)


def test_report_colours_the_histogram_by_label_only_when_labels_are_known(data, model, monkeypatch):
    page = parse(build_report(model, data, top_k=1, n_near=0))
    assert series_counts(page) == {"dent": 10, "good": 20}
    monkeypatch.setattr(model, "metadata_", {"normal": ["good"]}, raising=False)
    page = parse(build_report(model, data, top_k=1, n_near=0))
    assert series_counts(page) == {"good (normal)": 20, "dent": 10}
    assert page.legend == ["good (normal): 20", "dent: 10"]
    unlabelled = MultiViewDataset(data.views, ids=data.ids)
    html = build_report(model, unlabelled, top_k=1, n_near=0)
    assert not parse(html).series and not parse(html).legend and 'class="swatch' not in html
    assert 'class="above"' in html or 'class="below"' in html


def test_a_hostile_label_is_escaped_in_the_legend(data, model):
    labels = np.where(data.labels == "dent", MALICIOUS, "good")
    html = build_report(model, MultiViewDataset(data.views, labels=labels), top_k=2, n_near=2)
    assert MALICIOUS not in html
    page = parse(html)
    assert page.tags["script"] == 1
    assert f"{MALICIOUS}: 10" in page.legend
    assert MALICIOUS in series_counts(page)


def _mvtec(root: Path) -> dict[str, np.ndarray]:
    """A tiny MVTec AD folder of 16x16 textures; return the scratch masks by sample id."""
    rng = np.random.default_rng(0)
    masks = {}
    for folder, count in (("train/good", 12), ("test/good", 4)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(90, 130, (16, 16)).astype(np.uint8)).save(root / folder / f"{i}.png")
    for folder in ("test/scratch", "ground_truth/scratch"):
        (root / folder).mkdir(parents=True)
    for i in range(4):
        image, mask = rng.integers(90, 130, (16, 16)).astype(np.uint8), np.zeros((16, 16), bool)
        y, x = rng.integers(2, 10, 2)
        mask[y : y + 4, x : x + 3] = True
        image[mask] = 255
        Image.fromarray(image).save(root / "test" / "scratch" / f"{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / "scratch" / f"{i}_mask.png")
        masks[f"test/scratch/{i}"] = mask
    return masks


def test_cli_report_of_an_mvtec_folder_outlines_its_masks(tmp_path, ds_cache_dir):
    masks = _mvtec(tmp_path / "part")
    src, model, out = f"mvtec:{tmp_path / 'part'}", tmp_path / "m.mmocc", tmp_path / "report.html"
    tiny = ["--preset", "patch", "--size", "16", "--epochs", "1", "-p", "filters=[8,4,4]", "--device", "cpu"]
    trained = CliRunner().invoke(
        cli, ["train", "--data", src, "--normal", "good", *tiny, "--out", str(model)]
    )
    assert trained.exit_code == 0, trained.output
    args = ["report", str(model), "--data", src, "--out", str(out), "--top", "20", "--near", "20"]
    done = CliRunner().invoke(cli, [*args, "--device", "cpu"])
    assert done.exit_code == 0, done.output
    html = out.read_text(encoding="utf-8")
    page = parse(html)
    assert 'class="outline-key"' in html
    assert series_counts(page) == {"good (normal)": 16, "scratch": 4}
    outlined = [alt for alt in page.images if alt.endswith(", mask outlined")]
    assert sorted(re.fullmatch(r".*sample (\S+), mask outlined", alt)[1] for alt in outlined) == sorted(
        [*masks, *masks]
    )
    for sample, mask in masks.items():
        for alt in (f"image of sample {sample}", f"anomaly map of image, sample {sample}"):
            assert np.array_equal(cyan(page.images[f"{alt}, mask outlined"]), mask_outline(mask))
