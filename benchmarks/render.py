"""Write the benchmark Markdown files from their records and templates.

Usage (from the repository root)::

    python benchmarks/render.py                 # every topic with records in benchmarks/results/
    python benchmarks/render.py speed results   # some topics

A *topic* is one Markdown file: its records are ``benchmarks/results/<topic>.json``
(a list of plain dicts that a benchmark script measured, the first one of kind
``run``: command, date, settings and machine) and its text comes from
``benchmarks/templates/<topic>.md`` (prose, table headers and number formats),
filled by the module ``render_<topic>.py`` (what to show, in which order).

Template files hold named blocks. A line ``@@ name`` starts block ``name``;
the block is every line after it up to the next ``@@`` line, joined by
newlines (the last line's newline is not part of it, so a block that must
end with an empty line ends with an empty line). Lines before the first
``@@`` describe the file and are not used. Blocks are :meth:`str.format`
templates (``{{`` and ``}}`` are literal braces) with one addition: a format
spec with ``|`` chooses. ``A|B`` prints ``A`` for True and ``B`` for False
(``{met:met|**missed**}``), and formats a number with ``A`` or prints ``B``
for None (``{auc:.4f|—}``); ``A|B|C`` prints ``C`` for None too.
A missing record field raises :class:`RecordError` naming the topic, the
record and the field.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TEMPLATES = HERE / "templates"
TOPICS = {
    "speed": "SPEED.md",
    "results": "RESULTS.md",
    "ablations": "ABLATIONS.md",
    "calibration": "CALIBRATION.md",
    "threads": "THREADS.md",
    "defects": "DEFECTS.md",
    "knn": "KNN.md",
    "patch_speed": "PATCH_SPEED.md",
    "streaming": "STREAMING.md",
    "cluster": "CLUSTER.md",
    "real": "REAL.md",
    "combined": "COMBINED.md",
    "onnx": "ONNX.md",
    "onnx_parity": "ONNX_PARITY.md",
}
"""Topic -> the Markdown file it renders (beside this script); ``render_<topic>`` holds its renderer."""
RENDERERS = {"knn": "render_scale", "patch_speed": "render_scale", "streaming": "render_scale",
             "cluster": "render_scale", "onnx": "render_scale"}
"""Topics whose renderer module is not ``render_<topic>``."""
_BLOCK = re.compile(r"^@@ (\w+)$")


class RecordError(ValueError):
    """A record lacks a field that its Markdown needs, or a topic lacks a record."""


class Record(dict[str, Any]):
    """One record of a topic: a dict whose missing keys raise :class:`RecordError` naming what is missing.

    Parameters
    ----------
    data : mapping
        The record's fields; nested mappings become records too.
    where : str
        Names the record in errors, e.g. ``speed.json record 3 (kind 'scoring')``.
    """

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        super().__init__({k: _wrap(v, f"{where}, field {k!r}") for k, v in data.items()})
        self.where = where

    def __missing__(self, key: str) -> Any:
        raise RecordError(f"{self.where}: missing field {key!r}")

    def plus(self, **values: Any) -> Record:
        """A copy with ``values`` added (derived figures for a template), still naming this record."""
        return Record({**self, **values}, self.where)


def _wrap(value: Any, where: str) -> Any:
    """A mapping as a :class:`Record` (a record keeps its own name), a list's mappings too, the rest as is."""
    if isinstance(value, Record):
        return value
    if isinstance(value, Mapping):
        return Record(value, where)
    if isinstance(value, list):
        return [_wrap(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


class Topic:
    """The records of one topic, looked up by kind.

    Parameters
    ----------
    name : str
        The topic (a key of :data:`TOPICS`).
    records : sequence of mapping
        Its records, each with a ``kind``.
    """

    def __init__(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        self.name = name
        self.records = []
        for i, data in enumerate(records):
            kind = data.get("kind") if isinstance(data, Mapping) else None
            if kind is None:
                raise RecordError(f"{name}.json record {i}: missing field 'kind'")
            self.records.append(Record(data, f"{name}.json record {i} (kind {kind!r})"))

    def all(self, kind: str, **match: Any) -> list[Record]:
        """The records of ``kind`` whose fields equal ``match``, in file order."""
        return [r for r in self.records
                if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]

    def one(self, kind: str, **match: Any) -> Record:
        """The first record of ``kind`` matching ``match``; :class:`RecordError` when there is none."""
        found = self.all(kind, **match)
        if not found:
            detail = "".join(f", {k}={v!r}" for k, v in match.items())
            raise RecordError(f"{self.name}.json: no record of kind {kind!r}{detail}")
        return found[0]

    def first(self, kind: str, **match: Any) -> Record | None:
        """The first record of ``kind`` matching ``match``, or None (a section that did not run)."""
        found = self.all(kind, **match)
        return found[0] if found else None

    @property
    def run(self) -> Record:
        """The run record: command, date, settings and machine."""
        return self.one("run")


class _Formatter(string.Formatter):
    """:class:`string.Formatter` with the ``A|B`` and ``A|B|C`` specs of the module docstring."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        if "|" in format_spec:
            parts = format_spec.split("|")
            if value is None:
                return parts[-1]
            if isinstance(value, bool):
                return parts[0] if value else parts[1]
            format_spec = parts[0]
        return super().format_field(value, format_spec)


class Template:
    """The named blocks of one template file.

    Parameters
    ----------
    name : str
        The file ``benchmarks/templates/<name>.md``.
    """

    _formatter = _Formatter()

    def __init__(self, name: str) -> None:
        self.name = name
        lines: dict[str, list[str]] = {}
        current: list[str] | None = None
        text = (TEMPLATES / f"{name}.md").read_text(encoding="utf-8")
        for line in text.removesuffix("\n").split("\n"):
            match = _BLOCK.match(line)
            if match:
                current = lines.setdefault(match.group(1), [])
            elif current is not None:
                current.append(line)
        self.blocks = {block: "\n".join(text) for block, text in lines.items()}

    def __call__(self, block: str, values: Mapping[str, Any] | None = None, /, **more: Any) -> str:
        """Fill ``block`` with ``values`` and ``more``.

        Raises
        ------
        RecordError
            When a field is missing: from ``values`` when it is a :class:`Record`,
            else naming the template and block.
        """
        if block not in self.blocks:
            raise KeyError(f"templates/{self.name}.md has no block {block!r}")
        fields = values.plus(**more) if isinstance(values, Record) else {**(values or {}), **more}
        try:
            return self._formatter.vformat(self.blocks[block], (), fields)
        except KeyError as exc:
            raise RecordError(f"templates/{self.name}.md block {block!r}: no value for {exc}") from None

    def rows(self, block: str, records: Iterable[Mapping[str, Any]]) -> str:
        """Fill ``block`` once per record, one per line."""
        return "\n".join(self(block, record) for record in records)


def mean_std(stat: Mapping[str, Any], digits: int = 3) -> str:
    """A :func:`bench_common.spread` as ``mean ± std``, or the mean alone when ``std`` is None."""
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def bold(text: str, strong: bool = True) -> str:
    """``text`` in Markdown bold when ``strong``."""
    return f"**{text}**" if strong else text


@functools.cache
def template(name: str) -> Template:
    """The template ``benchmarks/templates/<name>.md`` (read once)."""
    return Template(name)


def load(topic: str, folder: Path = RESULTS) -> Topic:
    """The records of ``topic`` from ``folder/<topic>.json``."""
    path = folder / f"{topic}.json"
    return Topic(topic, json.loads(path.read_text(encoding="utf-8")))


def renderer(name: str) -> ModuleType:
    """The module ``benchmarks/<name>.py``, loaded once, whether or not this folder is on ``sys.path``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"no renderer {HERE / name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def render_text(topic: Topic) -> str:
    """The Markdown text of a topic: its renderer's text and a final newline."""
    module = renderer(RENDERERS.get(topic.name, f"render_{topic.name}"))
    return str(module.render(topic)) + "\n"


def render(topic: str, results: Path = RESULTS, out: Path = HERE) -> Path:
    """Render ``results/<topic>.json`` into ``out/<its Markdown file>``, atomically; return that path."""
    from mmocc.utils.files import atomic_open

    text = render_text(load(topic, results))
    path = out / TOPICS[topic]
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return path


def available(folder: Path = RESULTS) -> list[str]:
    """The topics with records in ``folder``."""
    return [topic for topic in TOPICS if (folder / f"{topic}.json").is_file()]


def main(argv: Sequence[str] | None = None) -> int:
    """Render the topics named (default: every topic with records)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", help=f"any of {list(TOPICS)} (default: all with records)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the <topic>.json records")
    parser.add_argument("--out", type=Path, default=HERE, help="folder the Markdown files are written to")
    args = parser.parse_args(argv)
    unknown = [t for t in args.topics if t not in TOPICS]
    if unknown:
        parser.error(f"unknown topic(s) {unknown}; choose from {list(TOPICS)}")
    for topic in args.topics or available(args.results):
        print(f"wrote {render(topic, args.results, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("render", sys.modules[__name__])  # the renderers import this module as "render"
    raise SystemExit(main())
