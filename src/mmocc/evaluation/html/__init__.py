"""A self-contained HTML report of a fitted detector's scores on a data set.

:func:`build_report` scores every sample and returns one HTML page that needs
nothing else to open (no network, no external file):

- a header: model file, preset and score rule, threshold τ, number of
  samples and of samples above τ, data source;
- a score histogram with τ marked, drawn as inline SVG; with labels, its
  bars are stacked and coloured by label (or normal against anomalous, for
  many labels), with a legend;
- cards of the highest-scoring samples above τ and of the normals nearest
  below τ: every image view side by side (PNG data URIs), with the anomaly
  map blended over it where the model has maps, the outline of the sample's
  ground-truth mask over both where the data has one, the scores, label,
  sample id and source file of each view;
- a table of every sample (id, label, score, is_anomaly, per-view scores,
  source files), sorted by clicking a header; ``report.html#sort=-score``
  opens it sorted (``-`` for descending) by the column of that key.

The page's Content-Security-Policy allows only inline styles, inline scripts
and ``data:`` images, so opening it makes no request. :func:`write_report`
writes it atomically.

The modules, one layer each:

- :mod:`~mmocc.evaluation.html.page`: the page, :func:`build_report`,
  :func:`render_report` and :func:`write_report`; it embeds ``report.css``
  and ``report.js``, files of this package;
- :mod:`~mmocc.evaluation.html.samples`: :class:`ScoredSamples`;
- :mod:`~mmocc.evaluation.html.cards`: which samples are cards, and their HTML;
- :mod:`~mmocc.evaluation.html.table`: the sortable table of every sample;
- :mod:`~mmocc.evaluation.html.svg`: the score histogram and its label groups;
- :mod:`~mmocc.evaluation.html.images`: display pixels, heat-map overlays, mask outlines and PNG
  ``<img>`` elements.
"""

from mmocc.evaluation.html.cards import select_cards
from mmocc.evaluation.html.images import (
    OUTLINE_RGB,
    THUMB_PX,
    draw_outline,
    heat_overlay,
    mask_outline,
    to_display,
)
from mmocc.evaluation.html.page import build_report, render_report, write_report
from mmocc.evaluation.html.samples import ScoredSamples
from mmocc.evaluation.html.svg import LabelGroups, histogram_legend, histogram_svg, label_groups

__all__ = [
    "OUTLINE_RGB",
    "THUMB_PX",
    "LabelGroups",
    "ScoredSamples",
    "build_report",
    "draw_outline",
    "heat_overlay",
    "histogram_legend",
    "histogram_svg",
    "label_groups",
    "mask_outline",
    "render_report",
    "select_cards",
    "to_display",
    "write_report",
]
