"""The ``rt-ray`` command line.

    rt-ray generate -c configs/quickstart.yaml --set generation.degree=4
    rt-ray teacher-sim --port 8765 --fault-rate 0.2
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
import traceback
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterator, List, NoReturn, Optional, TypeVar

import typer
from rich.table import Table

from rt_ray.config import ConfigError, RtRayConfig, load_config
from rt_ray.console import command_session, kept, log_path, quiet_output, report, status
from rt_ray.errors import UserError

T = TypeVar("T")
app = typer.Typer(
    help="rt-ray: distill step-by-step reasoning from a large teacher LLM into small students (Fine-tune-CoT) on Ray.",
    no_args_is_help=True,
    add_completion=False,
)
ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file; embedded defaults when omitted.")
SetOption = typer.Option(None, "--set", help="Override a config value: section.key=value (repeatable).")
VerboseOption = typer.Option(False, "--verbose", "-v", help="Show Ray's, Tune's and the libraries' output here, not only in the log file.")
EXIT_INTERRUPTED = 130


def _user_error(error: BaseException) -> str | None:
    """The message of the first user-fixable error (rt_ray.errors.UserError) among ``error`` and what
    it wraps; None for a fault of rt-ray or of what it runs on."""
    for linked in _linked_errors(error):
        if isinstance(linked, UserError):
            return str(linked)
    return None


def _linked_errors(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every error it carries: a Ray wrapper's ``cause`` (a worker's own error; the
    wrapper's text is a traceback), Ray Train's ``worker_failures`` and ``controller_failure``, and
    Python's ``__cause__`` and ``__context__``."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException):
            pending.insert(0, cause)
            continue
        yield current
        failures = getattr(current, "worker_failures", None) or {}
        pending += [*failures.values(), getattr(current, "controller_failure", None), current.__cause__, current.__context__]


def _load(config: Optional[Path], overrides: Optional[List[str]]) -> RtRayConfig:
    try:
        return load_config(config, overrides)
    except ConfigError as error:
        status().print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None


def _log_hint() -> str:
    path = log_path()
    return f" (full log: {path})" if path else ""


def _fail_clearly(error: BaseException) -> NoReturn:
    """Known errors: one line, exit 2. Others: one line naming the log file, whose end holds the
    traceback (with -v the traceback is shown as it is)."""
    message = _user_error(error)
    if message is not None:
        status().print(f"[red]error:[/red] {message}{_log_hint()}", soft_wrap=True)
        raise typer.Exit(2) from None
    if log_path() is None:
        raise error
    traceback.print_exception(error)  # descriptor 2: the log file
    root = _root_cause(error)
    first = (str(root).strip().splitlines() or [""])[0][:300]
    status().print(f"[red]error:[/red] {type(root).__name__}: {first}{_log_hint()}", soft_wrap=True)
    raise typer.Exit(1) from None


def _root_cause(error: BaseException) -> BaseException:
    """The error a worker raised, not Ray's wrapper of it (RayTaskError.cause, Train's and Tune's chains)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "cause", None) or error.__cause__
        if not isinstance(inner, BaseException):
            break
        error = inner
    return error


def _exit_at_once(signum, frame) -> None:
    os._exit(EXIT_INTERRUPTED)


def _first_interrupt(signum, frame) -> None:
    # The first Ctrl-C unwinds the command (finally blocks stop Serve, the simulator, a local Ray);
    # a second one while that runs ends the process at once.
    signal.signal(signal.SIGINT, _exit_at_once)
    raise KeyboardInterrupt


def _resume_command(command: str) -> str:
    """The command line as typed, less the flags that redo finished work."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--force":
            continue
        elif arg == "--from":
            skip = True
        elif not arg.startswith("--from="):
            args.append(arg)
    if Path(sys.argv[0]).name not in ("rt-ray", "cli.py", "__main__.py"):
        return shlex.join(["python", sys.argv[0], *args])  # a job entrypoint (jobs/<command>.py) names its command
    return shlex.join(["rt-ray", *args]) if args and args[0] == command else shlex.join(["rt-ray", command, *args])


def _stop_after_interrupt(cfg: RtRayConfig, command: str, invocation: str) -> NoReturn:
    from rt_ray import tracking

    _let_go_of_ray()  # a local cluster stops; a job's driver lets go of what it owns
    try:
        ended = tracking.end_interrupted_runs(cfg.tracking, invocation)
    except Exception:  # noqa: BLE001 - the store may be what was interrupted; the line below still matters
        traceback.print_exc()
        ended = 0
    what = kept()
    kept_text = "kept " + ", ".join(what) if what else "nothing had finished"
    runs = f"; {ended} MLflow run(s) marked KILLED" if ended else ""
    status().print(f"[yellow]interrupted:[/yellow] {kept_text}{runs}; resume with: {_resume_command(command)}{_log_hint()}",
                   soft_wrap=True)  # fmt: skip
    raise typer.Exit(EXIT_INTERRUPTED)


def _log_file(cfg: RtRayConfig, command: str) -> Path:
    folder = Path(cfg.log_dir or Path("runs") / cfg.run_name / "logs")
    return folder / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def _run_stage(command: str, config: Optional[Path], overrides: Optional[List[str]], verbose: bool,
               stage: Callable[[RtRayConfig], T]) -> tuple[RtRayConfig, T]:  # fmt: skip
    """Load the config, then run the stage with rt-ray's console: Ray's and the libraries' output in
    the log file (unless -v), known errors as one line (exit 2), Ctrl-C as one line (exit 130)."""

    cfg = _load(config, overrides)
    invocation = uuid.uuid4().hex[:12]
    signal.signal(signal.SIGINT, _first_interrupt)  # the sweep keeps Tune's own off it (tuner.tune_leaves_sigint)
    quiet = nullcontext() if verbose else quiet_output(_log_file(cfg, command))
    with command_session(run_tags={"rt_ray.invocation": invocation}), quiet:
        if log_path():
            status().print(f"[dim]rt-ray {command}: Ray's and the libraries' output goes to {log_path()} (-v shows it here)[/dim]",
                           soft_wrap=True)  # fmt: skip
        try:
            return cfg, stage(cfg)
        except KeyboardInterrupt:
            _stop_after_interrupt(cfg, command, invocation)
        except Exception as error:  # noqa: BLE001 - known errors get one clear line, others name the log
            _fail_clearly(error)
        finally:
            _let_go_of_ray()
    raise AssertionError("unreachable")


def _let_go_of_ray() -> None:
    """Leave Ray while the log file still takes its output: a local cluster stops here rather than
    at exit, and no late worker line reaches the terminal. On a running cluster this only
    disconnects; deployed Serve apps are detached and stay."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@app.command()
def generate(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption, verbose: bool = VerboseOption) -> None:
    """Teacher stage: sample D Zero-shot-CoT rationales per training question and keep the correct ones.

    Writes rationales.jsonl, filtered.jsonl/.parquet, failures.jsonl and stats.json to
    generation.output_dir and logs the run to MLflow. Cached samples are never requested again.
    """
    from rt_ray.teacher.pipeline import generate as run_generate

    cfg, result = _run_stage("generate", config, set_, verbose, run_generate)
    print_generation_stats(result.stats)
    status().print(f"outputs in [bold]{result.output_dir}[/bold]")
    if result.stats["status"] == "stopped_budget":
        status().print(
            f"[yellow]stopped:[/yellow] teacher.max_cost_usd={cfg.teacher.max_cost_usd} reached; "
            "rerun with a higher cap to finish (stored samples are not paid for again)"
        )
        raise typer.Exit(3)


def print_generation_stats(stats: dict) -> None:
    from rt_ray.pipeline.report import teacher_table

    keys = ("status", "questions", "questions_failed", "rationales", "rationales_kept", "teacher_accuracy",
            "yield_per_question", "requests_sent", "prompts_sent", "requests_per_question", "cache_hits", "retries",
            "prompt_tokens", "completion_tokens",
            "cost_usd", "cost_per_kept_rationale_usd", "wall_s")  # fmt: skip
    report().print(teacher_table(stats, keys).rich())


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
    batch_delay_s: float = typer.Option(1.0, help="Seconds from batches.create to a batch's output file."),
    batch_fail_rate: float = typer.Option(0.0, help="Share of batch lines that go to the error file."),
    batch_expire_first: int = typer.Option(0, help="This many batches expire with half their lines done."),
    batch_api_429s: int = typer.Option(0, help="This many of the first files.create / batches.create calls get a 429."),
    answer_key: Optional[List[str]] = typer.Option(None, help="A custom task's file (or URI), read as the answer key; repeat for its test file."),
    answer_type: str = typer.Option("number", help="The answer key's answer type: number, choice, yes_no or text."),
    field_: Optional[List[str]] = typer.Option(None, "--field", help="name=column, as task.fields (question=q, answer=a, rationale=solution, ...)."),
) -> None:
    """Offline teacher: an OpenAI-compatible server that solves coin flip, last letter and shuffled
    objects, and any custom task from its answer key."""
    from rt_ray.tasks import TaskDataError
    from rt_ray.simulator.server import FAULT_KINDS, SimulatorSettings, serve

    kinds = tuple(kind.strip() for kind in fault_kinds.split(",") if kind.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        status().print(f"[red]error:[/red] unknown --fault-kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}", soft_wrap=True)
        raise typer.Exit(2)
    settings = SimulatorSettings(
        model=model, latency_s=latency_s, latency_jitter_s=latency_jitter_s, wrong_rate=wrong_rate,
        fault_rate=fault_rate, fault_kinds=kinds, retry_after_ms=retry_after_ms, hang_s=hang_s,
        api_key=os.environ.get(api_key_env) if api_key_env else None, seed=seed, log_file=log_file,
        batch_delay_s=batch_delay_s, batch_fail_rate=batch_fail_rate, batch_expire_first=batch_expire_first,
        batch_api_429s=batch_api_429s, answer_key=tuple(answer_key or ()), answer_type=answer_type,
        fields=dict(assignment.split("=", 1) for assignment in field_ or ()),
    )  # fmt: skip
    status().print(f"teacher simulator on http://{host}:{port}/v1 (model {model})")
    try:
        serve(settings, host=host, port=port)
    except TaskDataError as error:  # the answer key's file
        status().print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def train(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    resume_from: Optional[str] = typer.Option(None, help="Checkpoint folder (Hugging Face format) or its URI (s3://...) to resume from."),
    verbose: bool = VerboseOption,
) -> None:
    """Student stage: fine-tune the student on the filtered rationales (Ray Train + DeepSpeed), then
    evaluate it on the test split, log it to MLflow and register it."""
    from rt_ray.student.stage import run_train_stage

    resume = str(resume_from) if resume_from else None
    cfg, summary = _run_stage("train", config, set_, verbose, lambda cfg: run_train_stage(cfg, resume_from=resume))
    test, trained = summary["test"], summary["train"]
    status().print(
        f"trained {summary['format']} student: loss {trained.get('loss', float('nan')):.3f} after {trained.get('step')} steps, "
        f"{trained.get('tokens_per_s', 0):.0f} tokens/s; test accuracy [bold]{test['accuracy']:.3f}[/bold] (n={test['n']})"
    )
    status().print(f"model in [bold]{summary['model_dir']}[/bold]; MLflow run {summary['mlflow_run_id']}, "
                   f"registered {cfg.student.registered_name} v{summary['registered_version']}")


@app.command()
def evaluate(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    model: Optional[str] = typer.Option(None, help="Trained student folder or its URI (s3://...); default train.output_dir/model."),
    baselines: bool = typer.Option(True, help="Also measure the zero-shot student and a vanilla fine-tune."),
    verbose: bool = VerboseOption,
) -> None:
    """Measure the trained student's test accuracy (batched generation on Ray Data), with baselines."""
    from rt_ray.student.stage import run_evaluate_stage

    cfg, outcome = _run_stage("evaluate", config, set_, verbose,
                              lambda cfg: run_evaluate_stage(cfg, model_dir=model, baselines=baselines))  # fmt: skip
    table = Table(title=f"test accuracy: {cfg.task.name}")
    for column in ("method", "accuracy", "n", "well-formed"):
        table.add_column(column)
    for method, result in outcome["results"].items():
        table.add_row(method, f"{result['accuracy']:.3f}", str(result["n"]), f"{result['correct_format']:.2f}")
    report().print(table)


@app.command()
def sweep(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption, verbose: bool = VerboseOption) -> None:
    """Sweep stage: Ray Tune over the diversity degree D (and other knobs), one MLflow child run per
    trial; writes a ranked table and a plot, and registers the best student with the alias `champion`.
    A rerun (after Ctrl-C, a failure or a finished sweep) reuses every finished trial."""
    from rt_ray.sweep.tuner import results_table, run_sweep

    cfg, outcome = _run_stage("sweep", config, set_, verbose, run_sweep)
    report().print(results_table(outcome.trials, outcome.knobs, cfg.sweep.metric).rich())
    if outcome.stopped_early:
        status().print(f"{len(outcome.stopped_early)} trials stopped early by ASHA, {outcome.steps_saved} training "
                       f"steps saved (listed in results.md)")  # fmt: skip
    best = outcome.best
    status().print(f"plot in [bold]{outcome.plot}[/bold]; champion: D={best.degree} "
                   f"({cfg.sweep.metric} {best.metric(cfg.sweep.metric):.3f}) -> models:/{cfg.student.registered_name}@champion "
                   f"(version {outcome.champion_version})")


@app.command()
def serve(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption, verbose: bool = VerboseOption) -> None:
    """Serve stage: the trained student on Ray Serve with an OpenAI-compatible API (Ctrl-C stops it).
    With no serve.model: the registry's champion of student.registered_name, else train.output_dir/model."""
    from rt_ray.serve.app import deploy_student

    def serve_until_interrupted(cfg: RtRayConfig) -> None:
        base = deploy_student(cfg)
        status().print(f"student [bold]{cfg.serve.model_name}[/bold] at {base}/v1 (OpenAI API), {base}/v1/solve, "
                       f"{base}/healthz")  # fmt: skip
        _serve_until_interrupted()

    _run_stage("serve", config, set_, verbose, serve_until_interrupted)


@app.command()
def deploy(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption, verbose: bool = VerboseOption) -> None:
    """Deploy the trained student on the running cluster's Ray Serve and return; it stays up after this
    process ends (``serve shutdown`` or ``serve delete student`` removes it)."""
    from rt_ray.serve.app import deploy_student

    cfg, base = _run_stage("deploy", config, set_, verbose, deploy_student)
    status().print(f"student [bold]{cfg.serve.model_name}[/bold] deployed at {base}/v1 (OpenAI API) and {base}/v1/solve")


@app.command()
def pipeline(
    config: Optional[Path] = ConfigOption,
    set_: Optional[List[str]] = SetOption,
    force: bool = typer.Option(False, "--force", help="Rerun every stage, even those finished with this config."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Rerun from this stage on: teacher, student, baselines, deploy."),
    verbose: bool = VerboseOption,
) -> None:
    """The whole pipeline: teacher -> sweep (or one train) -> baselines -> deploy -> sample queries,
    then one report. Starts what it needs locally (Ray, teacher simulator, MLflow store) and stops it.
    Stages already finished with the same config are reused, so a rerun resumes where it stopped."""
    from rt_ray.pipeline.run import run_pipeline
    from rt_ray.pipeline.stages import STAGES

    if from_stage is not None and from_stage not in STAGES:
        status().print(f"[red]error:[/red] --from {from_stage!r} is not a stage; stages: {', '.join(STAGES)}", soft_wrap=True)
        raise typer.Exit(2)
    rerun_from = STAGES[0] if force else from_stage

    def pipeline_then_serve(cfg: RtRayConfig):
        outcome = run_pipeline(cfg, rerun_from=rerun_from)
        if cfg.pipeline.keep_serving and outcome.endpoint:
            _serve_until_interrupted()
        return outcome

    _run_stage("pipeline", config, set_, verbose, pipeline_then_serve)


def _serve_until_interrupted() -> None:
    """Serving is what the command is for: Ctrl-C is its normal end (exit 0), with Serve shut down."""
    from ray import serve as ray_serve

    status().print("serving until Ctrl-C")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ray_serve.shutdown()
        status().print("stopped serving")


@app.command()
def experiment(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption, verbose: bool = VerboseOption) -> None:
    """The paper's comparison per task over seeds: teacher, zero-shot, vanilla, Fine-tune-CoT at each D.
    Writes summary.json, results.md and a plot to experiment.output_dir, all under one MLflow parent run;
    a rerun does only the runs that are missing."""
    from rt_ray.experiment.run import run_experiment

    _, outcome = _run_stage("experiment", config, set_, verbose, run_experiment)
    report(width=140).print(outcome["table"])
    status().print(f"report in [bold]{outcome['report_dir']}[/bold] (MLflow parent run {outcome['parent_run_id']}), "
                   f"{outcome['wall_s'] / 60:.1f} min")


@app.command("show-config")
def show_config(config: Optional[Path] = ConfigOption, set_: Optional[List[str]] = SetOption) -> None:
    """Print the resolved config (defaults, file and overrides) as JSON."""
    cfg = _load(config, set_)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))


if __name__ == "__main__":
    app()
