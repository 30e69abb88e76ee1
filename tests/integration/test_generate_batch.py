"""Batch mode end to end against the simulator's Files and Batch APIs: failed lines and an expired
batch resubmitted, 429s on upload and create, a process killed while a batch is in flight, the budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from rt_ray.config import parse_config
from rt_ray.teacher.pipeline import generate
from rt_ray.simulator import SimulatorProcess

pytestmark = pytest.mark.integration


def tree_for(tmp_path: Path, sim: SimulatorProcess, questions: int = 20, degree: int = 4, **teacher) -> dict:
    return {
        "run_name": "batch",
        "task": {"name": "coin_flip", "num_examples": questions * 2, "max_train": questions},
        "teacher": {"base_url": sim.base_url, "cache_dir": str(tmp_path / "cache"), "mode": "batch", "batch_poll_s": 0.2,
                    "backoff_base_s": 0.05, "backoff_max_s": 0.2, **teacher},
        "generation": {"degree": degree, "output_dir": str(tmp_path / "out")},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "batch"},
    }  # fmt: skip


def sim_stats(sim: SimulatorProcess) -> dict:
    return json.loads(urllib.request.urlopen(sim.base_url.replace("/v1", "/sim/stats")).read())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_batch_mode_resubmits_failed_lines_and_an_expired_batch_and_rides_out_429s(ray_cluster, tmp_path):
    batch = {"batch_delay_s": 0.4, "batch_fail_rate": 0.1, "batch_expire_first": 1, "batch_api_429s": 2}
    with SimulatorProcess(latency_s=0.0, batch=batch) as sim:
        result = generate(parse_config(tree_for(tmp_path, sim)))
        stats = sim_stats(sim)
        ledger = json.loads((tmp_path / "out" / "batches.json").read_text())
        again = generate(parse_config(tree_for(tmp_path, sim)))
        after_rerun = sim_stats(sim)
    assert result.stats["status"] == "complete" and result.stats["rationales"] == 80
    assert result.stats["teacher_mode"] == "batch" and result.stats["batch_ids"] == [entry["batch_id"] for entry in ledger]
    assert stats["requests"] == 0, "batch mode sends no online request"
    assert stats["batch_api_429s"] == {"/v1/files": 2, "/v1/batches": 2}, "both were throttled, and retried"
    assert ledger[0]["status"] == "expired" and ledger[0]["delivered"] < ledger[0]["lines"]
    assert {entry["step"] for entry in ledger} == {"rationales", "answers"} and len(ledger) >= 4
    assert stats["batches_created"] == len(ledger), "each batch was submitted once"
    # Only what was missing went again: every line served is a sample delivered or a failed line.
    assert result.stats["retries"] > 0 and result.stats["failed_requests"] == result.stats["retries"]
    assert result.stats["cost_usd"] > 0 and len(read_jsonl(tmp_path / "out" / "filtered.jsonl")) == result.stats["rationales_kept"]
    assert after_rerun["batches_created"] == stats["batches_created"] and again.stats["rationales"] == 80


def test_a_run_killed_while_its_batch_is_in_flight_resumes_by_polling_it(ray_cluster, tmp_path):
    with SimulatorProcess(latency_s=0.0, batch={"batch_delay_s": 6.0}) as sim:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(tree_for(tmp_path, sim, questions=10, degree=2)))
        ledger = tmp_path / "out" / "batches.json"
        first = subprocess.Popen([sys.executable, "-m", "rt_ray.cli", "generate", "-c", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))  # fmt: skip
        deadline = time.monotonic() + 120
        while not (ledger.is_file() and json.loads(ledger.read_text())):
            assert first.poll() is None and time.monotonic() < deadline, "no batch was submitted"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        in_flight = json.loads(ledger.read_text())
        assert len(in_flight) == 1 and not in_flight[0]["collected"]

        rerun = subprocess.run([sys.executable, "-m", "rt_ray.cli", "generate", "-c", str(config)], capture_output=True,
                               text=True, timeout=300, env=dict(os.environ))  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "polling 1 batch(es) a stopped run left in flight" in " ".join(rerun.stderr.split())
        entries = json.loads(ledger.read_text())
        stats = sim_stats(sim)
    assert entries[0]["batch_id"] == in_flight[0]["batch_id"] and entries[0]["collected"]
    assert [e["step"] for e in entries] == ["rationales", "answers"], "the rationale batch was not submitted again"
    assert stats["batches_created"] == 2 and stats["requests"] == 0
    produced = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert produced["status"] == "complete" and produced["rationales"] == 20


def test_the_budget_cap_stops_before_a_batch_that_could_pass_it_and_a_higher_cap_finishes(ray_cluster, tmp_path):
    with SimulatorProcess(latency_s=0.0, batch={"batch_delay_s": 0.2}) as sim:
        # Step 1's worst case (10 lines, 2 choices of up to 128 tokens each, at the batch discount) is ~$0.002.
        stopped = generate(parse_config(tree_for(tmp_path, sim, questions=10, degree=2, max_cost_usd=0.0009)))
        before = sim_stats(sim)
        nothing_recorded = not (tmp_path / "out" / "batches.json").is_file()
        finished = generate(parse_config(tree_for(tmp_path, sim, questions=10, degree=2, max_cost_usd=1.0)))
        after = sim_stats(sim)
    assert stopped.stats["status"] == "stopped_budget" and stopped.stats["cost_usd"] == 0
    assert before["batches_created"] == 0 and before["requests"] == 0 and nothing_recorded, "nothing was submitted past the cap"
    ledger = json.loads((tmp_path / "out" / "batches.json").read_text())
    assert finished.stats["status"] == "complete" and after["batches_created"] == len(ledger) == 2
    assert 0 < finished.stats["cost_usd"] <= sum(entry["worst_cost_usd"] for entry in ledger)
