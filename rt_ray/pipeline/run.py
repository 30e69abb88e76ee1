"""The whole pipeline in one call: teacher -> sweep (or one train) -> baselines -> deploy -> report.

    rt-ray pipeline -c configs/quickstart.yaml

It starts what it needs locally (Ray, the teacher simulator, the MLflow store) and shuts down what
it started; on a cluster (``ray job submit ... jobs/pipeline.py``) it joins the running one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from rt_ray import tracking
from rt_ray.config import RtRayConfig
from rt_ray.console import note_kept, report as report_console
from rt_ray.errors import UserError
from rt_ray.pipeline.cost import CostCase, Distillation, ServedStudent, TeacherOnTest, percentile
from rt_ray.pipeline.report import (
    SIMULATED, PipelineReport, accuracy_table, cost_table, report_markdown, samples_table, teacher_table,
)  # fmt: skip
from rt_ray.pipeline.stages import baselines_fingerprint, reruns, student_fingerprint
from rt_ray.progress import say
from rt_ray.records import forget_record, read_record, write_record
from rt_ray.results import Baselines, Champion, Score, SweepResult
from rt_ray.storage import local_dir


COST_METRICS = ("teacher_usd_per_1k_answers", "student_usd_per_1k_answers", "distill_usd", "break_even_answers")


class PipelineStopped(UserError, RuntimeError):
    """The teacher stage stopped early (spending cap); nothing after it can run yet."""


def teacher_stage(cfg: RtRayConfig, rerun_from: str | None) -> tuple[RtRayConfig, dict]:
    from rt_ray.teacher.pipeline import finished_or_generate

    # The sweep trains on the first D of the largest D's rationales, so the teacher samples that many.
    degree = max(cfg.sweep.degrees) if cfg.pipeline.sweep else cfg.generation.degree
    cfg = cfg.with_values(generation={"degree": degree})
    stats = finished_or_generate(cfg, degree, rerun=reruns("teacher", rerun_from))
    if stats["status"] == "stopped_budget":
        raise PipelineStopped(f"teacher.max_cost_usd={cfg.teacher.max_cost_usd} reached; rerun with a higher cap "
                              "(stored samples are not paid for again)")  # fmt: skip
    return cfg, stats


def student_stage(cfg: RtRayConfig, teacher_stats: dict, fingerprint: str) -> tuple[Champion, SweepResult | None]:
    if cfg.pipeline.sweep:
        from rt_ray.sweep.tuner import run_sweep

        sweep = run_sweep(cfg, teacher_stats=teacher_stats)
        return Champion.of_trial(sweep.best), sweep
    from rt_ray.student.stage import run_train_stage

    summary = read_record(cfg.train.output_dir, fingerprint)
    if summary is not None:
        say(f"student stage: reusing the student trained with this config in {summary['model_dir']}")
    else:
        summary = run_train_stage(cfg)
        # The pipeline's one student is its champion, as the sweep's best is: `rt-ray serve` finds it there.
        tracking.set_alias(cfg.tracking, cfg.student.registered_name, "champion", summary["registered_version"])
        write_record(cfg.train.output_dir, fingerprint, summary)
    note_kept(f"student ({summary['model_dir']})")
    label = f"Fine-tune-CoT, D={cfg.generation.degree}" if summary["format"] == "ft_cot" else summary["format"]
    train_time_s = summary["train"]["wall_s"]  # the workers' whole run, start-up included: what was paid for
    score = Score(summary["test"]["accuracy"], summary["test"]["n"])
    return Champion(summary["model_dir"], label, summary["format"], score, {}, train_time_s), None


def baseline_stage(cfg: RtRayConfig, champion: Champion, fingerprint: str) -> Baselines:
    """Zero-shot and vanilla (answer-only, same step budget) students, beside the champion re-scored."""
    from rt_ray.student.stage import run_evaluate_stage

    out = Path(cfg.pipeline.output_dir) / "baselines"
    results = read_record(out, fingerprint)
    if results is not None:
        say(f"baselines: reusing the zero-shot and vanilla students measured with this config in {out}")
    else:
        eval_cfg = cfg.with_values(train={**champion.overrides, "output_dir": str(out)})
        results = run_evaluate_stage(eval_cfg, model_dir=champion.model_dir, baselines=True)["results"]
        write_record(out, fingerprint, results)
    note_kept(f"baselines ({out})")
    return Baselines.from_results(results, champion.format)


def deploy_stage(cfg: RtRayConfig, champion: Champion) -> tuple[str, list[dict], dict | None]:
    """Deploy the champion on Ray Serve, ask it a few test questions over HTTP, and time a load probe."""
    from rt_ray.serve.app import deploy_student, read_serve_token
    from rt_ray.tasks import load_task_data

    say(f"deploying the champion ({champion.label}) on Ray Serve")
    endpoint = deploy_student(cfg.with_values(serve={"model": champion.model_dir}))
    say(f"champion deployed at [bold]{endpoint}/v1[/bold]")
    token = read_serve_token(cfg.serve)
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    test = load_task_data(cfg.task).test
    samples = []
    for sample in test[: cfg.pipeline.sample_queries]:
        body = solve(endpoint, cfg.task.name, sample.question, headers)
        samples.append({"question": sample.question, "rationale": body["rationale"], "answer": body["answer"], "gold": sample.answer})
    probe = None
    if cfg.pipeline.cost_probe_requests:
        say(f"cost case: {cfg.pipeline.cost_probe_requests} requests to the student at {cfg.serve.max_batch_size} concurrent")
        probe = load_probe(endpoint, cfg.task.name, [s.question for s in test], headers, cfg.pipeline.cost_probe_requests,
                           cfg.serve.max_batch_size)  # fmt: skip
    return endpoint, samples, probe


def solve(endpoint: str, task: str, question: str, headers: dict) -> dict:
    reply = httpx.post(f"{endpoint}/v1/solve", json={"task": task, "question": question}, headers=headers, timeout=120)
    reply.raise_for_status()
    return reply.json()


def load_probe(endpoint: str, task: str, questions: list[str], headers: dict, requests: int, concurrency: int) -> dict:
    """``requests`` test questions (cycled) sent with ``concurrency`` in flight: answers/s and latencies."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(question: str) -> float:
        began = time.perf_counter()
        solve(endpoint, task, question, headers)
        return time.perf_counter() - began

    asked = [questions[i % len(questions)] for i in range(requests)]
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(timed, asked))
    wall = time.perf_counter() - began
    return {"requests": requests, "concurrency": concurrency, "requests_per_s": requests / wall,
            "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99)}  # fmt: skip


def teacher_test_stage(cfg: RtRayConfig, rerun_from: str | None) -> dict:
    """The teacher's own answers to the test questions (greedy, one each): its accuracy and cost per answer."""
    from rt_ray.teacher.pipeline import finished_or_generate

    on_test = cfg.with_values(generation={"split": "test", "degree": 1, "output_dir": str(Path(cfg.pipeline.output_dir) / "teacher_test")})
    return finished_or_generate(on_test, 1, rerun=reruns("teacher", rerun_from))


def training_seconds(sweep: SweepResult | None, student_summary_s: float) -> float:
    """What the distillation's training took: every sweep trial (all were paid for), or the one run."""
    return sum(t.trial_time_s for t in sweep.trials) if sweep else student_summary_s


def the_cost_case(cfg: RtRayConfig, teacher_test: dict, teacher_stats: dict, champion: Champion, probe: dict,
                  training_s: float) -> CostCase:  # fmt: skip
    return CostCase(
        TeacherOnTest(teacher_test["teacher_accuracy"], teacher_test["questions"], teacher_test["cost_usd"]),
        ServedStudent(champion.score.accuracy, **probe, usd_per_hour=cfg.serve.usd_per_hour),
        Distillation(teacher_stats["cost_usd"], training_s, cfg.train.usd_per_hour),
    )


def undeploy(cfg: RtRayConfig) -> None:
    from ray import serve

    if not cfg.pipeline.keep_serving:
        serve.shutdown()


def forget_stages_from(cfg: RtRayConfig, rerun_from: str | None) -> None:
    """Before anything runs: the outcomes of the stages asked to run again are forgotten, so that a
    resume after Ctrl-C finishes the new run rather than reusing the old one."""
    from rt_ray.sweep.tuner import forget_sweep

    if reruns("student", rerun_from):
        forget_record(cfg.train.output_dir)
        forget_sweep(cfg.sweep.output_dir)
    if reruns("baselines", rerun_from):
        forget_record(Path(cfg.pipeline.output_dir) / "baselines")


def run_pipeline(cfg: RtRayConfig, rerun_from: str | None = None) -> PipelineReport:
    """Every stage in order; a stage finished earlier with the same inputs is reused, except from
    ``rerun_from`` (a name in STAGES) on."""
    import ray

    from rt_ray.cluster import ensure_ray

    forget_stages_from(cfg, rerun_from)
    started = time.monotonic()
    started_ray = not ray.is_initialized()
    ensure_ray(cfg.ray)
    try:
        cfg, teacher_stats = teacher_stage(cfg, rerun_from)
        student_fp = student_fingerprint(cfg, teacher_stats["teacher_fingerprint"])
        champion, sweep = student_stage(cfg, teacher_stats, student_fp)
        baselines = None
        if cfg.pipeline.baselines:
            baselines = baseline_stage(cfg, champion, baselines_fingerprint(cfg, student_fp))
            champion = champion.rescored(baselines.champion)
        endpoint, samples, probe = (None, [], None)
        if cfg.pipeline.deploy:
            endpoint, samples, probe = deploy_stage(cfg, champion)
        cost = None
        if probe is not None:
            teacher_test = teacher_test_stage(cfg, rerun_from)
            cost = the_cost_case(cfg, teacher_test, teacher_stats, champion, probe, training_seconds(sweep, champion.train_time_s))
        report = PipelineReport(cfg.run_name, cfg.task.name, time.monotonic() - started, teacher_stats, champion, baselines, sweep,
                                _sweep_markdown(cfg), cfg.sweep.metric, endpoint, tuple(samples), cost, str(cfg.pipeline.output_dir))  # fmt: skip
        write_report(cfg, report)
        show_report(report)
        return report
    finally:
        if cfg.pipeline.deploy:
            undeploy(cfg)
        if started_ray and not cfg.pipeline.keep_serving:
            ray.shutdown()


def _sweep_markdown(cfg: RtRayConfig) -> str | None:
    path = local_dir(cfg.sweep.output_dir) / "results.md"
    return path.read_text() if cfg.pipeline.sweep and path.is_file() else None


def write_report(cfg: RtRayConfig, report: PipelineReport) -> None:
    out = Path(cfg.pipeline.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.as_json(), indent=2, default=str))
    (out / "report.md").write_text(report_markdown(report))
    with tracking.tracked_run(cfg, stage="pipeline"):
        tracking.log_metrics(report.accuracy_metrics())
        tracking.log_metrics({"wall_s": report.wall_s, "teacher_requests_sent": report.teacher.get("requests_sent", 0)})
        if report.cost:
            cost = report.cost.as_dict()
            tracking.log_metrics({key: cost[key] for key in COST_METRICS if cost[key] is not None})
        for path in (out / "report.md", out / "report.json", report.sweep.plot if report.sweep else None):
            if path:
                tracking.log_artifact(path, artifact_path="report")


def show_report(report: PipelineReport) -> None:
    from rt_ray.sweep.tuner import results_table

    printer = report_console()
    printer.rule(f"rt-ray pipeline: {report.run_name}")
    if report.teacher.get("teacher_simulated"):
        printer.print(SIMULATED)
    printer.print(teacher_table(report.teacher).rich())
    if report.sweep:
        printer.print(results_table(report.sweep.trials, report.sweep.knobs, report.sweep_metric).rich())
    printer.print(accuracy_table(report.accuracy, report.task).rich())
    if report.cost:
        printer.print(cost_table(report.cost.rows()).rich())
        for line in report.cost.sentences():
            printer.print(line)
    if report.samples:
        printer.print(samples_table(list(report.samples)).rich())
    if report.endpoint:
        printer.print(f"endpoint: {report.endpoint}/v1 (OpenAI API), {report.endpoint}/v1/solve")
    printer.print(f"wall time {report.wall_s:.0f} s; report in {report.report_dir}")
