"""A team's own task through the teacher stage: its file checked before any request, answered offline by
the simulator's answer key, read from a local path or S3, and fingerprinted by its content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rt_ray.config import parse_config
from rt_ray.teacher.pipeline import generate, reusable_generation
from rt_ray.simulator import SimulatorProcess, free_port
from tests.integration.test_generate import cli, read_jsonl, write_config

pytestmark = pytest.mark.integration


def word_problems(count: int, start: int = 0) -> list[dict]:
    """Two-step arithmetic with worked solutions, numbers as answers."""
    rows = []
    for i in range(start, start + count):
        boxes, pens, lost = 2 + i % 5, 3 + i % 7, 1 + i % 2
        rows.append({"q": f"Ann has {boxes} boxes of {pens} pens and loses {lost} pens. How many pens has she? (#{i})",
                     "a": f"{boxes * pens - lost:,}",
                     "steps": f"First, {boxes} boxes of {pens} pens are {boxes} * {pens} = {boxes * pens} pens. "
                              f"Then she loses {lost}, so {boxes * pens} - {lost} = {boxes * pens - lost}."})  # fmt: skip
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def custom_tree(tmp_path: Path, path, base_url: str, answer_type: str = "number", fields: dict | None = None, **task) -> dict:
    return {
        "run_name": "custom", "log_dir": str(tmp_path / "logs"),
        "task": {"name": "custom", "path": str(path), "answer_type": answer_type,
                 "fields": fields or {"question": "q", "answer": "a", "rationale": "steps"}, **task},
        "teacher": {"base_url": base_url, "cache_dir": str(tmp_path / "cache"), "simulator": {"autostart": True, "latency_s": 0.0}},
        "generation": {"degree": 2, "output_dir": str(tmp_path / "teacher"), "questions_per_block": 8},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "custom"},
    }  # fmt: skip


def rationale_questions(sim: SimulatorProcess) -> list[str]:
    return [entry["prompt"].split("Q: ", 1)[1].split("\nA:", 1)[0] for entry in sim.requests() if "Therefore" not in entry["prompt"]]


def test_a_custom_file_is_answered_offline_from_its_worked_solutions_and_the_set_is_marked_simulated(ray_cluster, tmp_path):
    path = write_jsonl(tmp_path / "problems.jsonl", word_problems(30))
    tree = custom_tree(tmp_path, path, f"http://127.0.0.1:{free_port()}/v1", instructions="Show your arithmetic.")
    stats = generate(parse_config(tree)).stats
    assert stats["teacher_simulated"] is True and stats["status"] == "complete" and stats["questions"] == 21
    kept = read_jsonl(tmp_path / "teacher" / "filtered.jsonl")
    solutions = {row["q"].split("(#")[1]: row["steps"].split(" = ")[1].split(" ")[0] for row in word_problems(30)}
    assert kept and all(" * " in row["rationale"] and "So the answer is" in row["rationale"] for row in kept)
    assert all(solutions[row["question"].split("(#")[1]] in row["rationale"] for row in kept), "the row's own worked solution"
    assert 0.6 < len(kept) / (2 * 21) < 1.0, "wrong_rate 0.2: most rationales reach the gold answer, some do not"


def test_one_bad_row_in_a_thousand_exits_2_naming_it_and_sends_no_request(ray_cluster, tmp_path):
    rows = word_problems(1000)
    rows[616]["a"] = "12 apples"
    path = write_jsonl(tmp_path / "problems.jsonl", rows)
    with SimulatorProcess(latency_s=0.0) as sim:
        run = cli(["generate", "-c", str(write_config(tmp_path, custom_tree(tmp_path, path, sim.base_url)))])
        assert sim.stats()["requests"] == 0
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"{path} line 617: answer '12 apples' is not a number (task.answer_type: number)" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "teacher" / "stats.json").exists()


def test_an_edited_row_is_paid_for_alone_and_the_same_file_from_another_folder_is_the_same_task(ray_cluster, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "problems.jsonl", word_problems(20))
    train_questions = 14
    with SimulatorProcess(latency_s=0.0, answer_key=([str(path)], "number", {"question": "q", "answer": "a", "rationale": "steps"})) as sim:
        tree = custom_tree(tmp_path, path, sim.base_url, train_ratio=0.7)
        first = generate(parse_config(tree)).stats
        assert len(rationale_questions(sim)) == train_questions

        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")  # the same file by a relative path from another working directory
        elsewhere = parse_config({**tree, "task": {**tree["task"], "path": "../problems.jsonl"}})
        assert reusable_generation(elsewhere, 2)["teacher_fingerprint"] == first["teacher_fingerprint"]

        rows = word_problems(20)
        edited = next(r for r in rows if r["q"] in {s["question"] for s in read_jsonl(tmp_path / "teacher" / "rationales.jsonl")})
        edited["q"] = edited["q"].replace("loses", "drops")
        write_jsonl(path, rows)
        assert reusable_generation(parse_config(tree), 2) is None, "an edited file is a new task"
        second = generate(parse_config(tree)).stats
        asked_again = rationale_questions(sim)[train_questions:]
    assert second["teacher_fingerprint"] != first["teacher_fingerprint"] and second["questions"] == train_questions
    assert asked_again == [edited["q"]], "the cache served every unchanged question"


def test_a_csv_choice_task_is_read_from_s3_and_its_answers_judged_as_letters_or_texts(ray_cluster, s3_bucket, tmp_path):
    import pyarrow.fs as pafs

    lines = ["context,question,options,key"]
    for i in range(12):
        colours = ["red", "blue", "green"]
        lines.append(f'Item {i} is {colours[i % 3]}.,What colour is item {i}?,"{" | ".join(colours)}",'
                     f'{colours[i % 3] if i % 2 else "ABC"[i % 3]}')  # fmt: skip
    uri = f"{s3_bucket}/custom-{tmp_path.name}/colours.csv"
    filesystem, inner = pafs.FileSystem.from_uri(uri)
    with filesystem.open_output_stream(inner) as stream:
        stream.write(("\n".join(lines) + "\n").encode())
    tree = custom_tree(tmp_path, uri, f"http://127.0.0.1:{free_port()}/v1", answer_type="choice",
                       fields={"question": "question", "answer": "key", "choices": "options", "context": "context"})  # fmt: skip
    stats = generate(parse_config(tree)).stats
    outputs = read_jsonl(tmp_path / "teacher" / "rationales.jsonl")
    assert stats["status"] == "complete" and len({o["question"] for o in outputs}) == stats["questions"] == 8
    assert all(o["question"].endswith("Answer choices: (A) red, (B) blue, (C) green.") for o in outputs)
    assert all(o["answer"] in "ABC" for o in outputs) and any(o["correct"] for o in outputs)
    assert all(o["correct"] == (o["predicted"] == o["answer"]) for o in outputs)


def test_the_pipeline_distills_a_custom_file_serves_it_on_v1_solve_and_reports_the_cost_case(ray_cluster, tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.tiny import TINY_STUDENT

    path = write_jsonl(tmp_path / "problems.jsonl", word_problems(60))
    tree = custom_tree(tmp_path, path, f"http://127.0.0.1:{free_port()}/v1")
    tree.update(student={**TINY_STUDENT, "max_length": 192, "max_new_tokens": 64, "eval_replicas": 1},
                train={"batch_size": 4, "max_steps": 10, "output_dir": str(tmp_path / "student")},
                serve={"port": free_port(), "max_tokens_cap": 64, "max_batch_size": 4},
                pipeline={"sweep": False, "baselines": False, "sample_queries": 2, "cost_probe_requests": 8,
                          "output_dir": str(tmp_path / "pipeline")})  # fmt: skip
    config = tmp_path / "custom.yaml"
    config.write_text(yaml.safe_dump(tree))
    run = subprocess.run([sys.executable, "-m", "rt_ray.cli", "pipeline", "-c", str(config)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads((tmp_path / "pipeline" / "report.json").read_text())
    assert report["task"] == "custom" and report["teacher"]["teacher_simulated"] is True
    assert len(report["samples"]) == 2 and all(s["answer"] is None or s["answer"].lstrip("-").replace(".", "").isdigit()
                                               for s in report["samples"]), report["samples"]  # fmt: skip
    cost = report["cost_case"]
    assert cost["teacher"]["questions"] == 18 and cost["student"]["requests_per_s"] > 0
    assert cost["student_usd_per_1k_answers"] < cost["teacher_usd_per_1k_answers"] and cost["break_even_answers"] > 0
    markdown = (tmp_path / "pipeline" / "report.md").read_text()
    assert "## What the student saves" in markdown and cost["sentences"][0] in markdown
    assert "rationales were simulated" in markdown and "rationales were simulated" in run.stdout
    assert "task file" in run.stderr and "60 rows read, 60 kept" in run.stderr
