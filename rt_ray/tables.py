"""Report tables described once and rendered twice: as a rich table on the console and as Markdown
in the report files (pipeline, sweep, experiment).

    spec = TableSpec("test accuracy on coin_flip", ["method", "accuracy"], [["vanilla", "0.840"]])
    console.print(spec.rich())      # the console's table
    spec.markdown()                 # the same rows in report.md

The Markdown is a dozen lines of our own rather than tabulate or pandas' ``to_markdown`` (which needs
tabulate): a header, a separator and escaped pipes are all the reports need, and a user's machine
gets one dependency fewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class TableSpec:
    title: str
    header: list[str]
    rows: list[list[str]]
    show_header: bool = True  # the console's; Markdown always has one
    fold: bool = False  # long cells wrap within their column on the console (no ellipsis)

    def rich(self):
        from rich.table import Table

        table = Table(title=self.title, show_header=self.show_header)
        if self.show_header:
            for column in self.header:
                table.add_column(column, **({"overflow": "fold"} if self.fold else {}))
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        return markdown_table(self.header, self.rows)


def markdown_table(header: list[str], rows: Iterable[Iterable]) -> str:
    """A GitHub Markdown table, a row a line and a trailing newline; ``|`` inside a cell is escaped."""
    lines = [_row(header), "|" + "---|" * len(header)]
    lines += [_row(row) for row in rows]
    return "\n".join(lines) + "\n"


def _row(cells: Iterable) -> str:
    texts = [str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells]
    return "| " + " | ".join(texts) + " |"
