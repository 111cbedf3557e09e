"""Module and function sizes of a source tree: lines, code lines, longest function.

Usage (from the repository root)::

    python benchmarks/code_size.py [SRC_DIR]     # default: src/mmocc

"Code lines" leave out blank lines, comments and docstrings; a function's size
is its code lines (nested functions count towards the outer one too).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers covered by module, class and function docstrings."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str, tree: ast.AST) -> set[int]:
    """Line numbers holding code (not blank, comment-only or docstring)."""
    skip = docstring_lines(tree)
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.ENDMARKER:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in skip:
                lines.add(line)
    return lines


def measure(path: Path) -> tuple[int, int, str, int]:
    """Return (lines, code lines, longest function name, its code lines) of one file."""
    source = path.read_text()
    tree = ast.parse(source)
    code = code_lines(source, tree)
    longest, size = "", 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            n = sum(1 for line in span if line in code)
            if n > size:
                longest, size = node.name, n
    return len(source.splitlines()), len(code), longest, size


def main(argv: list[str]) -> int:
    """Print a Markdown table of every module under the source folder."""
    root = Path(argv[0] if argv else "src/mmocc")
    rows = [(p.relative_to(root).as_posix(), *measure(p)) for p in sorted(root.rglob("*.py"))]
    print("| module | lines | code lines | longest function (code lines) |")
    print("|---|---|---|---|")
    for name, lines, code, func, size in rows:
        print(f"| {name} | {lines} | {code} | {func} ({size}) |")
    total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"| **{len(rows)} modules** | {total[0]} | {total[1]} | max {max(r[4] for r in rows)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
