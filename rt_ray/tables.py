"""Markdown tables, written one way for every report (pipeline, sweep, experiment).

    markdown_table(["method", "accuracy"], [["vanilla", "84.0"], ["ft_cot", "94.0"]])

A dozen lines of our own rather than tabulate or pandas' ``to_markdown`` (which needs tabulate): the
reports need a header, a separator and escaped pipes, and one dependency fewer on a user's machine.
"""

from __future__ import annotations

from typing import Iterable


def markdown_table(header: list[str], rows: Iterable[Iterable]) -> str:
    """A GitHub Markdown table, a row a line and a trailing newline; ``|`` inside a cell is escaped."""
    lines = [_row(header), "|" + "---|" * len(header)]
    lines += [_row(row) for row in rows]
    return "\n".join(lines) + "\n"


def _row(cells: Iterable) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
