"""The ``rt-ray`` command line.

    rt-ray generate -c configs/quickstart.yaml --set generation.degree=4
    rt-ray teacher-sim --port 8765 --fault-rate 0.2
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, List, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from rt_ray.config import ConfigError, RtRayConfig, load_config

T = TypeVar("T")
app = typer.Typer(
    help="rt-ray: distill step-by-step reasoning from a large teacher LLM into small students (Fine-tune-CoT) on Ray.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file; embedded defaults when omitted.")
SetOption = typer.Option(None, "--set", help="Override a config value: section.key=value (repeatable).")


def _user_error(error: BaseException) -> str | None:
    """The message of a known, user-fixable error anywhere in the chain (Ray wraps worker errors)."""
    from rt_ray.student.trainer import TrainingDataError
    from rt_ray.tasks import TaskDataError
    from rt_ray.teacher.client import TeacherFatalError
    from rt_ray.teacher.pipeline import GenerationNotFinished, TeacherUnavailable

    from rt_ray.pipeline.run import PipelineStopped

    known = (ConfigError, TaskDataError, TeacherUnavailable, TeacherFatalError, FileNotFoundError,
             GenerationNotFinished, TrainingDataError, PipelineStopped)  # fmt: skip
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, known):
            return str(error)
        cause = getattr(error, "cause", None)
        if isinstance(cause, BaseException):
            error = cause
            continue
        for candidate in (error.__cause__, error.__context__):
            if isinstance(candidate, known):
                return str(candidate)
        text = str(error)
        for kind in known:
            marker = f"{kind.__name__}: "
            if marker in text:
                return text.split(marker, 1)[1].strip().splitlines()[0]
        error = error.__cause__ or error.__context__
    return None


def _load(config: Optional[Path], overrides: Optional[List[str]]) -> RtRayConfig:
    try:
        return load_config(config, overrides)
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def _fail_clearly(error: BaseException) -> NoReturn:
    message = _user_error(error)
    if message is None:
        raise error
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2) from None


def _run_stage(config: Optional[Path], overrides: Optional[List[str]], stage: Callable[[RtRayConfig], T]) -> tuple[RtRayConfig, T]:
    """Load the config, run the stage; known errors end in one clear line and exit code 2."""
    cfg = _load(config, overrides)
    try:
        return cfg, stage(cfg.with_absolute_paths())
    except Exception as error:  # noqa: BLE001 - known errors get one clear line, others a traceback
        _fail_clearly(error)


@app.command()
def generate(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """Teacher stage: sample D Zero-shot-CoT rationales per training question and keep the correct ones.

    Writes rationales.jsonl, filtered.jsonl/.parquet, failures.jsonl and stats.json to
    generation.output_dir and logs the run to MLflow. Cached samples are never requested again.
    """
    from rt_ray.teacher.pipeline import generate as run_generate

    cfg, result = _run_stage(config, set_, lambda cfg: run_generate(cfg, console=console))
    print_generation_stats(result.stats)
    console.print(f"outputs in [bold]{result.output_dir}[/bold]")
    if result.stats["status"] == "stopped_budget":
        console.print(
            f"[yellow]stopped:[/yellow] teacher.max_cost_usd={cfg.teacher.max_cost_usd} reached; "
            "rerun with a higher cap to finish (stored samples are not paid for again)"
        )
        raise typer.Exit(3)


def print_generation_stats(stats: dict) -> None:
    from rt_ray.pipeline.report import teacher_table

    keys = ("status", "questions", "questions_failed", "rationales", "rationales_kept", "teacher_accuracy",
            "yield_per_question", "requests_sent", "cache_hits", "retries", "prompt_tokens", "completion_tokens",
            "cost_usd", "cost_per_kept_rationale_usd", "wall_s")  # fmt: skip
    Console().print(teacher_table(stats, keys))


@app.command("teacher-sim")
def teacher_sim(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8765, help="Port to listen on."),
    model: str = typer.Option("teacher-sim", help="Model name it reports."),
    latency_s: float = typer.Option(0.05, help="Seconds each request takes."),
    latency_jitter_s: float = typer.Option(0.0, help="Extra uniform random latency, seconds."),
    wrong_rate: float = typer.Option(0.2, help="Share of rationales that reason to a wrong answer."),
    fault_rate: float = typer.Option(0.0, help="Share of requests that get an injected fault."),
    fault_kinds: str = typer.Option(
        "rate_limit,server_error,unavailable,hang,truncated_json,drop_connection", help="Faults to inject."
    ),
    retry_after_ms: int = typer.Option(200, help="Retry-After sent with simulated 429s."),
    hang_s: float = typer.Option(30.0, help="How long a 'hang' fault holds the request."),
    api_key_env: Optional[str] = typer.Option(None, help="Require the bearer token held by this env variable."),
    seed: int = typer.Option(0, help="Seed of its random choices."),
    log_file: Optional[Path] = typer.Option(None, help="Append one JSON line per request served."),
) -> None:
    """Offline teacher: an OpenAI-compatible server that solves coin flip, last letter and shuffled objects."""
    from rt_ray.teacher.simulator.server import FAULT_KINDS, SimulatorSettings, serve

    kinds = tuple(kind.strip() for kind in fault_kinds.split(",") if kind.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        console.print(f"[red]error:[/red] unknown --fault-kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        raise typer.Exit(2)
    settings = SimulatorSettings(
        model=model, latency_s=latency_s, latency_jitter_s=latency_jitter_s, wrong_rate=wrong_rate,
        fault_rate=fault_rate, fault_kinds=kinds, retry_after_ms=retry_after_ms, hang_s=hang_s,
        api_key=os.environ.get(api_key_env) if api_key_env else None, seed=seed, log_file=log_file,
    )  # fmt: skip
    console.print(f"teacher simulator on http://{host}:{port}/v1 (model {model})")
    serve(settings, host=host, port=port)


@app.command()
def train(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    resume_from: Optional[Path] = typer.Option(None, help="Checkpoint directory (Hugging Face format) to resume from."),
) -> None:
    """Student stage: fine-tune the student on the filtered rationales (Ray Train + DeepSpeed), then
    evaluate it on the test split, log it to MLflow and register it."""
    from rt_ray.student.stage import run_train_stage

    cfg, summary = _run_stage(config, set_, lambda cfg: run_train_stage(cfg, resume_from=str(resume_from) if resume_from else None))
    test, trained = summary["test"], summary["train"]
    console.print(
        f"trained {summary['format']} student: loss {trained.get('loss', float('nan')):.3f} after {trained.get('step')} steps, "
        f"{trained.get('tokens_per_s', 0):.0f} tokens/s; test accuracy [bold]{test['accuracy']:.3f}[/bold] (n={test['n']})"
    )
    console.print(f"model in [bold]{summary['model_dir']}[/bold]; MLflow run {summary['mlflow_run_id']}, "
                  f"registered {cfg.student.registered_name} v{summary['registered_version']}")


@app.command()
def evaluate(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    model: Optional[Path] = typer.Option(None, help="Trained student directory; default train.output_dir/model."),
    baselines: bool = typer.Option(True, help="Also measure the zero-shot student and a vanilla fine-tune."),
) -> None:
    """Measure the trained student's test accuracy (batched generation on Ray Data), with baselines."""
    from rt_ray.student.stage import run_evaluate_stage

    cfg, outcome = _run_stage(config, set_, lambda cfg: run_evaluate_stage(cfg, model_dir=model, baselines=baselines))
    table = Table(title=f"test accuracy: {cfg.task.name}")
    for column in ("method", "accuracy", "n", "well-formed"):
        table.add_column(column)
    for method, report in outcome["results"].items():
        table.add_row(method, f"{report['accuracy']:.3f}", str(report["n"]), f"{report['correct_format']:.2f}")
    Console().print(table)


@app.command()
def sweep(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted sweep; finished trials are kept."),
) -> None:
    """Sweep stage: Ray Tune over the diversity degree D (and other knobs), one MLflow child run per
    trial; writes a ranked table and a plot, and registers the best student with the alias `champion`."""
    from rt_ray.sweep.tuner import run_sweep

    cfg, outcome = _run_stage(config, set_, lambda cfg: run_sweep(cfg, resume=resume, console=console))
    best = outcome["trials"][0]
    console.print(f"plot in [bold]{outcome['plot']}[/bold]; champion: D={best['params']['degree']} "
                  f"({cfg.sweep.metric} {best[cfg.sweep.metric]:.3f}) -> models:/{cfg.student.registered_name}@champion "
                  f"(version {outcome['champion_version']})")


@app.command()
def serve(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """Serve stage: the trained student on Ray Serve with an OpenAI-compatible API (Ctrl-C stops it)."""
    from rt_ray.serve.app import deploy_student

    cfg, base = _run_stage(config, set_, deploy_student)
    console.print(f"student [bold]{cfg.serve.model_name}[/bold] at {base}/v1 (OpenAI API), {base}/v1/solve, {base}/healthz")
    _serve_until_interrupted()


@app.command()
def deploy(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """Deploy the trained student on the running cluster's Ray Serve and return; it stays up after this
    process ends (``serve shutdown`` or ``serve delete student`` removes it)."""
    from rt_ray.serve.app import deploy_student

    cfg, base = _run_stage(config, set_, deploy_student)
    console.print(f"student [bold]{cfg.serve.model_name}[/bold] deployed at {base}/v1 (OpenAI API) and {base}/v1/solve")


@app.command()
def pipeline(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """The whole pipeline: teacher -> sweep (or one train) -> baselines -> deploy -> sample queries,
    then one report. Starts what it needs locally (Ray, teacher simulator, MLflow store) and stops it."""
    from rt_ray.pipeline.run import run_pipeline

    cfg, report = _run_stage(config, set_, lambda cfg: run_pipeline(cfg, console=console))
    if cfg.pipeline.keep_serving and report.get("endpoint"):
        _serve_until_interrupted()


def _serve_until_interrupted() -> None:
    import time

    from ray import serve as ray_serve

    console.print("serving until Ctrl-C")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ray_serve.shutdown()


@app.command()
def experiment(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """The paper's comparison per task over seeds: teacher, zero-shot, vanilla, Fine-tune-CoT at each D.
    Writes summary.json, results.md and a plot to experiment.output_dir, all under one MLflow parent run;
    a rerun does only the runs that are missing."""
    from rt_ray.experiment.run import run_experiment

    _, outcome = _run_stage(config, set_, lambda cfg: run_experiment(cfg, console=console))
    Console(width=140).print(outcome["table"])
    console.print(f"report in [bold]{outcome['report_dir']}[/bold] (MLflow parent run {outcome['parent_run_id']}), "
                  f"{outcome['wall_s'] / 60:.1f} min")


@app.command("show-config")
def show_config(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """Print the resolved config (defaults, file and overrides) as JSON."""
    cfg = _load(config, set_)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))


if __name__ == "__main__":
    app()
