"""The progress bars as a user reads them, however narrow the line."""

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from rt_ray.progress import _columns


@pytest.mark.parametrize("width", [60, 80, 160])
def test_a_bar_always_shows_its_count_and_total_and_all_of_its_detail(width):
    out = io.StringIO()
    with Progress(*_columns(), console=Console(file=out, width=width), transient=False) as progress:
        task = progress.add_task("teacher", total=350, detail="kept 1134/1400 sent 739 cached 0 retried 39 $0.237")
        progress.update(task, completed=350)
    text = out.getvalue()
    assert "350/350" in text and "…" not in text
    assert "$0.237" in " ".join(text.split()), "a detail too long for the line folds onto the next, whole"
