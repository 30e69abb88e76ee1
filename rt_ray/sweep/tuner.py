"""The sweep stage: Ray Tune over the diversity degree D (and other knobs), one student per trial.

    rt-ray sweep -c configs/quickstart.yaml     # table, plot, champion in the MLflow registry
    rt-ray sweep -c configs/quickstart.yaml     # again (after Ctrl-C, a failure, or done): finished trials are reused

Rationales are generated once at the largest D (a finished teacher run with the same inputs is
reused); each trial trains on the first D per question, as the paper does, inside a Tune function
trainable that runs a Ray Train ``TorchTrainer`` (Ray Train V2's documented Tune pattern). Trials ask
Tune for almost no resources themselves: their training workers reserve the CPUs/GPUs, so trials
queue where the cluster is full and run side by side where it is not (``sweep.max_concurrent_trials``).

With ``sweep.scheduler: asha`` the training workers score the validation questions every
``sweep.report_every_steps`` and Tune's ASHAScheduler stops the trials that trail at each rung; the
results list them with the steps they did not spend.

Each finished trial leaves its record (``rt_ray.records``) in ``trials/<label>-<fingerprint>/``; a
trial whose record is there (same knobs, same inputs) reports it instead of training again, so any
rerun resumes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from rt_ray import tracking
from rt_ray.axes import check_axes, questions_beyond, with_student
from rt_ray.config import RtRayConfig, apply_override, parse_config
from rt_ray.console import note_kept
from rt_ray.progress import bar, new_board, post_progress, say, watch_board
from rt_ray.records import RECORD_FILE, forget_record, read_record, write_record
from rt_ray.results import StoppedTrial, SweepResult, TrialResult
from rt_ray.storage import join, local_dir, publish, ray_storage_path
from rt_ray.tables import TableSpec, markdown_table
from rt_ray.sweep.space import (
    other_knobs, plot_accuracy_vs_degree, results_rows, search_space, trial_count, trial_label, trial_overrides,
)  # fmt: skip

SWEEP_STATE = "sweep_state.json"
SWEEP_REPORT = ("accuracy_vs_degree.png", "results.json", "results.md")
PREDICTIONS_VALIDATION, PREDICTIONS_TEST = "predictions_validation.jsonl", "predictions_test.jsonl"
RESULT_KEYS = ("validation_accuracy", "test_accuracy", "train_samples", "trial_time_s", "model_dir", "mlflow_run_id")
logger = logging.getLogger(__name__)
# What a trial's student depends on besides its knobs and the teacher's rationales.
TRIAL_INPUTS = ("task", "student", "train", "sweep.validation_size")


def trial_folder(cfg: RtRayConfig, knobs: dict, teacher_fingerprint: str) -> tuple[str | Path, str]:
    """(the trial's output location, the fingerprint its record carries)."""
    fingerprint = cfg.fingerprint_of(*TRIAL_INPUTS, upstream=teacher_fingerprint)
    return join(cfg.sweep.output_dir, "trials", f"{trial_label(knobs)}-{fingerprint}"), fingerprint


def sweep_trial(knobs: dict, base_config: dict, parent_run_id: str, teacher_fingerprint: str, board) -> None:
    """One Tune trial: train the student on the first D rationales, evaluate it, report to Tune
    (or report the result this trial left in an earlier run)."""
    import ray.tune

    from rt_ray.student.evaluate import evaluate_splits
    from rt_ray.student.trainer import train_student
    from rt_ray.tasks import load_task_data

    tree = json.loads(json.dumps(base_config))
    for assignment in trial_overrides(knobs):
        apply_override(tree, assignment)
    cfg = parse_config(with_student(tree, base_config["sweep"]["students"], knobs.get("student"), origin="sweep"))
    label = trial_label(knobs)
    out, fingerprint = trial_folder(cfg, knobs, teacher_fingerprint)
    target = {"board": board, "key": label}
    result = read_record(out, fingerprint)
    if result is not None:
        post_progress(target, phase="done", reused=True, step=cfg.train.max_steps, max_steps=cfg.train.max_steps, **result)
        ray.tune.report(result)
        return

    data = load_task_data(cfg.task)
    validation = data.train[: cfg.sweep.validation_size]
    held_out = {s.id for s in validation} | questions_beyond(data.train, cfg.sweep.validation_size, knobs.get("train_size"))
    started = time.monotonic()
    every = cfg.sweep.report_every_steps
    result = train_student(cfg, fmt="ft_cot", degree=knobs["degree"], output_dir=out, held_out=held_out,
                           parent_run_id=parent_run_id, run_name=f"{cfg.run_name}-{label}", progress=target,
                           validation=validation if every else None, validate_every=every, report_to_tune=True)  # fmt: skip
    post_progress(target, phase="evaluating")
    source = {"path": str(result.model_dir)}
    staged = local_dir(out)
    evaluated = evaluate_splits(cfg, source, "ft_cot", {"validation": (validation, staged / PREDICTIONS_VALIDATION),
                                                        "test": (data.test, staged / PREDICTIONS_TEST)})  # fmt: skip
    (validation_report, _), (test_report, _) = evaluated["validation"], evaluated["test"]
    metrics = {
        "validation_accuracy": validation_report["accuracy"],
        "test_accuracy": test_report["accuracy"],
        "train_samples": result.metrics["train_samples"],
        "trial_time_s": time.monotonic() - started,
    }
    with tracking.resumed_run(cfg.tracking, result.mlflow_run_id):
        tracking.log_metrics(metrics)
        tracking.log_artifact(staged / PREDICTIONS_TEST, artifact_path="eval")
    outcome = {**metrics, "model_dir": str(result.model_dir), "mlflow_run_id": result.mlflow_run_id}
    write_record(out, fingerprint, outcome)  # last: its presence means a whole trial
    publish(out, PREDICTIONS_VALIDATION, PREDICTIONS_TEST, RECORD_FILE)  # the model went up with train_student
    post_progress(target, phase="done", **outcome)
    ray.tune.report(outcome)


def run_sweep(cfg: RtRayConfig, teacher_stats: dict | None = None) -> SweepResult:
    """``_run_sweep``, as the one run writing sweep.output_dir."""
    from rt_ray.locks import output_lock

    with output_lock(cfg.sweep.output_dir, "sweep.output_dir"):
        return _run_sweep(cfg, teacher_stats)


def _run_sweep(cfg: RtRayConfig, teacher_stats: dict | None = None) -> SweepResult:
    """Sweep, or return the outcome of the finished sweep with the same inputs (``forget_sweep``
    makes it train every trial again). Rationales come from ``teacher_stats``'s finished set, else are generated
    once at the largest D (a finished set with the same teacher inputs is reused)."""
    import ray.tune

    from rt_ray.cluster import ensure_ray
    from rt_ray.teacher.pipeline import finished_or_generate

    out = cfg.sweep.output_dir
    staged = local_dir(out)
    staged.mkdir(parents=True, exist_ok=True)
    space = search_space(cfg.sweep)
    check_axes(cfg, cfg.sweep, cfg.sweep.validation_size, origin="sweep")
    teacher_stats = teacher_stats or finished_or_generate(cfg, max(space["degree"]))
    upstream = teacher_stats["teacher_fingerprint"]
    fingerprint = cfg.fingerprint_of(*TRIAL_INPUTS, "sweep", upstream=upstream)
    finished = read_record(out, fingerprint)
    if finished is not None:
        finished = SweepResult.from_record(finished)
        say(f"sweep: reusing the finished sweep in {out} ({len(finished.trials)} trials)")
        note_kept(f"sweep ({out})")
        return finished
    tree = cfg.with_values(generation={"degree": max(space["degree"])}).model_dump(mode="json")
    ensure_ray(cfg.ray)

    total = trial_count(space, cfg.sweep.search, cfg.sweep.num_samples)
    say(f"sweep: {total} trials over {', '.join(f'{k} {v}' for k, v in space.items())}, up to {cfg.sweep.max_concurrent_trials} at a time")
    with tracking.resumed_run(cfg.tracking, tracking.recorded_parent_run(cfg, staged / SWEEP_STATE, "sweep", fingerprint)) as parent_run_id:
        board = new_board()
        param_space = {k: ray.tune.grid_search(v) if cfg.sweep.search == "grid" else ray.tune.choice(v) for k, v in space.items()}
        trainable = _trainable(tree, parent_run_id, upstream, board)
        stopped = stopped_trials_callback(cfg.tracking, board)
        tuner = ray.tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=ray.tune.TuneConfig(
                metric=cfg.sweep.metric, mode="max", num_samples=cfg.sweep.num_samples,
                max_concurrent_trials=cfg.sweep.max_concurrent_trials, scheduler=_scheduler(cfg, space),
            ),  # fmt: skip
            run_config=ray.tune.RunConfig(name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                                          storage_path=ray_storage_path(out, "tune"), callbacks=[stopped]),  # fmt: skip
        )
        with bar("sweep", total=total) as overall, watch_board(board, on_done=_trial_done(overall, cfg.sweep.metric)):
            with tune_leaves_sigint():
                grid = tuner.fit()
        stopped.wait_until_freed()
        outcome = _finish(cfg, grid, space, parent_run_id, out)
    write_record(out, fingerprint, outcome.as_record())
    publish(out, *SWEEP_REPORT, SWEEP_STATE, RECORD_FILE)
    note_kept(f"sweep ({out})")
    return outcome


@contextmanager
def tune_leaves_sigint() -> Iterator[None]:
    """Tune's own SIGINT handler would turn Ctrl-C into "Resume experiment with: Tuner.restore(...)";
    rt-ray's (cli._first_interrupt) ends every command the same way. Tune reads this variable when
    fit() starts, so it is set for that call only (a caller's own value stands)."""
    if "TUNE_DISABLE_SIGINT_HANDLER" in os.environ:
        yield
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)


def forget_sweep(sweep_dir: str | Path) -> None:
    """Make the next run of this sweep train every trial again, under a new MLflow parent run."""
    forget_record(sweep_dir)
    (local_dir(sweep_dir) / SWEEP_STATE).unlink(missing_ok=True)
    for trial in local_dir(sweep_dir).glob("trials/*/"):
        forget_record(trial)


def _scheduler(cfg: RtRayConfig, space: dict):
    """None (FIFO: every trial runs its full budget) or ASHA on the workers' validation reports. Its clock
    is the training step of each report (``validated_step``); the trial's last report (after
    evaluation) carries none, so ASHA never stops a trial that has finished training."""
    if cfg.sweep.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    every = cfg.sweep.report_every_steps
    return ASHAScheduler(time_attr="validated_step", max_t=max(space.get("max_steps", [cfg.train.max_steps])),
                         grace_period=cfg.sweep.asha_grace_steps or every,
                         reduction_factor=cfg.sweep.asha_reduction_factor, stop_last_trials=False)  # fmt: skip


def stopped_trials_callback(tracking_cfg, board):
    """A Tune callback (driver side) for the trials the scheduler stops: their MLflow run is ended
    KILLED, their progress row says where they stopped, and a thread frees their worker groups once
    the trial's actor is gone (``wait_until_freed`` joins those threads)."""
    from ray.tune import Callback

    class StoppedTrials(Callback):
        def __init__(self) -> None:
            self.freeing: list[threading.Thread] = []

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            last = trial.last_result or {}
            if "model_dir" in last or "validated_step" not in last:
                return  # finished (or reused): nothing of it is left running
            key = trial_label(dict(trial.config))
            freeing = threading.Thread(target=free_worker_groups, args=(board, key), name=f"rt-ray-free {key}", daemon=True)
            freeing.start()
            self.freeing.append(freeing)
            if last.get("mlflow_run_id"):
                tracking.end_run(tracking_cfg, last["mlflow_run_id"], "KILLED")
            post_progress({"board": board, "key": key}, phase="done", stopped_early=True,
                          step=last["validated_step"], validation_accuracy=last["validation_accuracy"])  # fmt: skip

        def wait_until_freed(self) -> None:
            for thread in self.freeing:
                thread.join()

    return StoppedTrials()


def free_worker_groups(board, key: str, wait_s: float = 300.0) -> None:
    """Remove the placement groups of a stopped run's worker groups (registered on ``board`` under
    ``key``) once each group's rank 0 is gone.

    Why wait: Tune calls ``on_trial_complete`` before it stops the trial's actor, whose Train controller
    is still alive then; a group removed under a living controller reads to it as a failed worker, and
    it starts the group again in a new placement group, which then outlives it (a placement group
    lasts as long as the job that made it, and Ray Train's own cleaner asks the dashboard's state
    API, which a local cluster here runs without). The workers fate-share with their controller, so
    once rank 0 is gone its controller is too, and nothing can start the group again."""
    import ray

    deadline, freed = time.monotonic() + wait_s, set()
    try:
        while pending := [g for g in ray.get(board.groups.remote(key), timeout=60) if g[0] not in freed]:
            for group_id, worker in pending:
                if not _wait_until_gone(worker, deadline):
                    logger.warning("run %s: its workers still run %.0f s after it was stopped; freeing them anyway", key, wait_s)
                _remove_placement_group(group_id)
                freed.add(group_id)
    except Exception:  # a thread's error would otherwise reach no one
        logger.exception("run %s: could not free its workers", key)


def _wait_until_gone(worker, deadline: float) -> bool:
    """True once the actor ``worker`` has died; False if it still lives at ``deadline``."""
    import ray
    from ray.exceptions import ActorDiedError

    probe = worker.__ray_ready__.remote()  # every actor answers it; it fails once the actor is dead
    while time.monotonic() < deadline:
        ready, _ = ray.wait([probe], timeout=1.0)
        if not ready:
            continue
        try:
            ray.get(probe)
        except ActorDiedError:
            return True
        except ray.exceptions.RayActorError:  # unreachable for a moment: ask again
            pass
        time.sleep(0.5)
        probe = worker.__ray_ready__.remote()
    return False


def _remove_placement_group(group_id: str) -> None:
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id)))
    if placement_group_table(group).get("state") not in (None, "REMOVED"):
        remove_placement_group(group)


def _trial_done(overall, metric: str):
    def announce(key: str, entry: dict) -> None:
        overall.advance(1)
        if entry.get("stopped_early"):
            say(f"trial {key}: stopped early by ASHA at step {entry['step']} (validation accuracy "
                f"{entry['validation_accuracy']:.3f})")  # fmt: skip
            return
        how = "reused" if entry.get("reused") else f"{entry.get('trial_time_s', 0):.0f} s"
        say(f"trial {key}: {metric} {entry.get(metric, float('nan')):.3f}, test accuracy "
            f"{entry.get('test_accuracy', float('nan')):.3f} ({how})")  # fmt: skip
        note_kept(f"trial {key}")

    return announce


def _trainable(base_config: dict, parent_run_id: str, teacher_fingerprint: str, board):
    import ray.tune

    # The base config travels beside the search space (tune.with_parameters), so Tune's tables and
    # trial names show only the knobs. The trial function only drives its TorchTrainer, whose workers
    # reserve the CPUs/GPUs; so the trial asks for no CPU (Tune needs some resource: a little memory).
    trainable = ray.tune.with_parameters(sweep_trial, base_config=base_config, parent_run_id=parent_run_id,
                                         teacher_fingerprint=teacher_fingerprint, board=board)  # fmt: skip
    return ray.tune.with_resources(trainable, {"CPU": 0, "memory": 256 * 2**20})


def _finish(cfg: RtRayConfig, grid, space: dict, parent_run_id: str, location: str | Path) -> SweepResult:
    metric = cfg.sweep.metric
    out = local_dir(location)
    trials, stopped = [], []
    for result in grid:
        if result.error is not None or not result.metrics or metric not in result.metrics:
            continue
        params = dict(result.config)
        if "model_dir" in result.metrics:
            trials.append({"params": params, **{k: result.metrics[k] for k in RESULT_KEYS}})
        elif "validated_step" in result.metrics:  # stopped by the scheduler before it finished training
            budget = params.get("max_steps", cfg.train.max_steps)
            stopped.append({"params": params, "step": result.metrics["validated_step"], "steps_saved":
                            budget - result.metrics["validated_step"], "validation_accuracy": result.metrics["validation_accuracy"]})  # fmt: skip
    if not trials:
        raise RuntimeError(f"no sweep trial finished; see the Tune logs in {ray_storage_path(location, 'tune')}")
    ranked = results_rows(trials, metric)
    knobs = other_knobs(space)
    plot = plot_accuracy_vs_degree(ranked, knobs, metric, out / SWEEP_REPORT[0])
    result = SweepResult(tuple(TrialResult(**t) for t in ranked), tuple(knobs), str(plot), parent_run_id, None,
                         tuple(StoppedTrial(**t) for t in stopped))  # fmt: skip
    (out / "results.json").write_text(json.dumps(ranked, indent=2))
    (out / "results.md").write_text(results_table(result.trials, knobs, metric).markdown() + stopped_markdown(stopped, knobs))
    with tracking.resumed_run(cfg.tracking, result.best.mlflow_run_id):
        version = tracking.log_student_model(result.best.model_dir, cfg.student.registered_name)
    tracking.set_alias(cfg.tracking, cfg.student.registered_name, "champion", version)
    with tracking.resumed_run(cfg.tracking, parent_run_id):
        tracking.log_metrics({f"best_{metric}": result.best.metric(metric), "trials": len(ranked), "trials_stopped_early": len(stopped),
                              "steps_saved": result.steps_saved})  # fmt: skip
        for path in (plot, out / "results.json", out / "results.md"):
            tracking.log_artifact(path, artifact_path="sweep")
    return replace(result, champion_version=version)


def results_table(ranked: tuple[TrialResult, ...], knobs: tuple[str, ...] | list[str], metric: str) -> TableSpec:
    """The trials, best first: the console's table and results.md's."""
    rows = [[str(rank), str(t.degree), *(str(t.params.get(k)) for k in knobs), str(t.train_samples),
             f"{t.validation_accuracy:.3f}", f"{t.test_accuracy:.3f}", f"{t.trial_time_s:.0f}"]
            for rank, t in enumerate(ranked, 1)]  # fmt: skip
    return TableSpec(f"sweep results, ranked by {metric}", ["rank", "D", *knobs, "train samples", "validation acc", "test acc", "time s"], rows)


def stopped_markdown(stopped: list[dict], knobs: list[str]) -> str:
    """The trials the scheduler stopped early, and the training steps that saved; empty when none."""
    if not stopped:
        return ""
    header = ["D", *knobs, "stopped at step", "validation acc", "steps saved"]
    rows = [[t["params"]["degree"], *(t["params"].get(k) for k in knobs), t["step"], f"{t['validation_accuracy']:.3f}", t["steps_saved"]]
            for t in stopped]  # fmt: skip
    saved = sum(t["steps_saved"] for t in stopped)
    return f"\nStopped early by ASHA: {len(stopped)} trials, {saved} training steps saved.\n\n" + markdown_table(header, rows)
