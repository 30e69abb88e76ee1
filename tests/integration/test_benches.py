"""Every bench in bench/ runs to its RESULT line in smoke mode (tiny sizes, the same code path), on
the session's Ray cluster, so that a bench never stops working unnoticed. Its figures mean nothing
at these sizes; the full runs and their figures are in the README."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "bench"
# The keys each bench's RESULT line holds (the README's benchmark table names them).
RESULT_KEYS = {
    "serve_throughput.py": {"batched_over_unbatched", "served_over_bare", "p99_ms"},
    "teacher_client_cpu.py": {"one_pool_over_pools_cpu_c8", "one_pool_over_pools_cpu_c16"},
    "teacher_cost.py": {"requests_per_question_online", "rpm_bound_efficiency", "batch_cost_ratio", "requests_per_question_unbatched"},
    "teacher_scale.py": {"driver_rss_growth_mb_per_100k", "rerun_samples_per_s", "cache_files_per_100k"},
    "teacher_throughput.py": {"efficiency", "speedup_vs_sequential"},
    "train_memory.py": {"worker_rss_growth_mb_per_1m_samples", "in_memory_rss_growth_mb_per_1m", "stream_peak_mb_at_large"},
    "train_throughput.py": {"ray_over_bare", "bucketed_over_plain", "padding_share_plain", "padding_share_bucketed"},
}


def test_every_bench_script_is_smoke_tested():
    scripts = {p.name for p in BENCH.glob("*.py") if p.name != "smoke.py"}
    assert scripts == set(RESULT_KEYS), "a bench without a smoke test, or a test without its bench"


@pytest.mark.parametrize("script", sorted(RESULT_KEYS))
def test_the_bench_runs_in_smoke_mode_to_its_result_line(ray_cluster, script):
    run = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ))  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    values = dict(pair.split("=", 1) for pair in line.split()[1:])
    assert set(values) == RESULT_KEYS[script], line
    assert all(math.isfinite(float(value)) for value in values.values()), line
