"""The HTML report in a real browser: headless Chromium runs its script, sorts, renders it.

No driver is needed: ``chromium --headless --dump-dom URL`` prints the DOM once
the page has loaded (load handlers included), ``--screenshot`` renders it, and
``--enable-logging=stderr`` prints every console message (uncaught errors,
Content-Security-Policy violations, console calls) as a ``CONSOLE`` line. A
probe script appended to a copy of the report clicks the table headers and
writes what it saw into ``data-*`` attributes of ``<body>``, read back from
the dumped DOM. Skipped where Debian's ``chromium`` package is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmocc import MultimodalOCC
from mmocc.data.dataset import MultiViewDataset
from mmocc.datasets import make_synthetic
from mmocc.evaluation.html import build_report

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)"),
    pytest.mark.usefixtures("one_torch_thread"),
]

N_ROWS = 1040
TOP, NEAR = 6, 4
HOSTILE_ID = '<script>document.title = "pwned"</script>'
CONSOLE = re.compile(r":CONSOLE[:(]")

PROBE = """<script>
"use strict";
window.addEventListener("load", () => {
  const body = document.body.dataset;
  const images = Array.from(document.images);
  body.images = images.length;
  body.decoded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  const heads = Array.from(document.querySelectorAll("#samples th"));
  const col = heads.findIndex((th) => th.dataset.key === "score");
  const rows = document.getElementById("samples").tBodies[0].rows;
  const scores = () => Array.from(rows, (row) => row.cells[col].dataset.v);
  body.openedScores = JSON.stringify(scores().map(Number));
  body.openedSort = heads[col].getAttribute("aria-sort");
  heads[col].querySelector("button").click();
  body.clickedScores = JSON.stringify(scores().map(Number));
  body.clickedHash = location.hash;
  const id = document.querySelector('th[data-key="sample_id"] button');
  id.click();
  id.click();
  body.hash = location.hash;
});
</script>
</body>"""
"""Appended to a copy of the report: count decoded images, note the order the page opened in, click
the score header once (ascending), then the sample_id header twice (descending)."""

BROKEN = '<script>notAFunction();</script><img src="http://127.0.0.1:9/x.png" alt="">\n</body>'
"""Appended to a copy of the report: an uncaught error and a request the page's CSP must block."""


class DomParser(HTMLParser):
    """What the tests read back from a dumped DOM: body data, page title, sample ids and sort state."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.title = ""
        self.sorted_by: dict[str, str] = {}
        self.ids: list[str] = []
        self._where = ""

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        if tag == "body":
            self.body = attributes
        elif tag == "title" and not self.body:
            self._where = "title"
        elif tag == "th" and "aria-sort" in attributes:
            self.sorted_by[attributes["data-key"]] = attributes["aria-sort"]
        elif tag == "tbody":
            self._where = "tbody"
        elif tag == "tr" and self._where == "tbody":
            self._where = "row"
            self.ids.append("")

    def handle_endtag(self, tag):
        if tag in ("title", "tbody"):
            self._where = ""
        elif tag == "td" and self._where == "row":
            self._where = "tbody"

    def handle_data(self, data):
        if self._where == "title":
            self.title += data
        elif self._where == "row":
            self.ids[-1] += data


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile, console messages logged on stderr."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def console_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if CONSOLE.search(line)]


def report_copy(tmp_path: Path, html: str, script: str) -> Path:
    """Write the report with ``script`` (ending in ``</body>``) appended to its body."""
    assert html.count("</body>") == 1
    path = tmp_path / "report.html"
    path.write_text(html.replace("</body>", script), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def report_html() -> str:
    """A report of 1,040 samples by a model with anomaly maps; one sample id is hostile markup."""
    base = make_synthetic(n_per_class=20, n_classes=2, size=16, seed=0)
    clf = MultimodalOCC(preset="patch", epochs=1, filters=(8, 4), random_state=0).fit(base[base.labels == 0])
    reps = N_ROWS // len(base)
    ids = [HOSTILE_ID, *map(str, range(1, N_ROWS))]
    views = {name: np.concatenate([array] * reps) for name, array in base.views.items()}
    paths = {name: np.array([f"/data/{name}/{i}.png" for i in range(N_ROWS)]) for name in views}
    data = MultiViewDataset(views, labels=np.tile(base.labels, reps), ids=ids, paths=paths)
    return build_report(clf, data, top_k=TOP, n_near=NEAR, title="browser test", source="synthetic")


@pytest.fixture(scope="module")
def opened(tmp_path_factory, report_html) -> tuple[DomParser, list[str], Path]:
    """Open the report with the probe, sorted by a deep link; return its DOM, console lines, screenshot."""
    tmp_path = tmp_path_factory.mktemp("browser")
    page = report_copy(tmp_path, report_html, PROBE)
    shot = tmp_path / "report.png"
    done = run_chromium(
        tmp_path / "profile",
        "--dump-dom",
        f"--screenshot={shot}",
        "--window-size=1280,1800",
        "--hide-scrollbars",
        page.as_uri() + "#sort=-score",
    )
    dom = DomParser()
    dom.feed(done.stdout)
    return dom, console_lines(done), shot


def test_browser_logs_no_console_message(opened):
    assert opened[1] == []


def test_browser_shows_every_row_and_image(opened):
    dom = opened[0]
    n_images = (TOP + NEAR) * 2 * 2
    assert (dom.body["data-images"], dom.body["data-decoded"]) == (str(n_images), str(n_images))
    assert len(dom.ids) == N_ROWS
    assert HOSTILE_ID in dom.ids and dom.title == "browser test"


def test_browser_opens_a_deep_link_sorted(opened):
    dom = opened[0]
    scores = json.loads(dom.body["data-opened-scores"])
    assert len(scores) == N_ROWS and scores == sorted(scores, reverse=True)
    assert dom.body["data-opened-sort"] == "descending"


def test_browser_sorts_on_header_clicks(opened):
    dom = opened[0]
    scores = json.loads(dom.body["data-clicked-scores"])
    assert len(scores) == N_ROWS and scores == sorted(scores)
    assert dom.body["data-clicked-hash"] == "#sort=score"
    numeric = [int(i) for i in dom.ids if i.isdigit()]
    assert numeric == sorted(numeric, reverse=True) and numeric[:2] == [N_ROWS - 1, N_ROWS - 2]
    assert dom.sorted_by == {"sample_id": "descending"} and dom.body["data-hash"] == "#sort=-sample_id"


def test_browser_screenshot(opened):
    shot = opened[2]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.size == (1280, 1800)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_browser_console_check_sees_errors_and_blocked_requests(tmp_path, report_html):
    page = report_copy(tmp_path, report_html, BROKEN)
    text = "\n".join(console_lines(run_chromium(tmp_path / "profile", "--dump-dom", page.as_uri())))
    assert "notAFunction" in text
    assert "Content Security Policy" in text and "127.0.0.1" in text


def test_report_of_a_thousand_rows_stays_small(report_html):
    # The README says a 1,000-row report is about 0.4 MB: 1,040 rows of 16 px two-view samples with
    # maps measured 0.36 MB; the bound leaves room for markup changes, not for a per-row regression.
    assert len(report_html.encode("utf-8")) < 450_000
