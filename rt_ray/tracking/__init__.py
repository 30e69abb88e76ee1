"""MLflow tracking: the only module that imports mlflow.

    with tracked_run(cfg, stage="generate") as run_id:
        log_metrics({"teacher_accuracy": 0.8})
        log_artifact(path)

The tracking URI comes from ``tracking.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else a local
SQLite store (``./mlflow.db``, artifacts under ``./mlartifacts``).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rt_ray.config import RtRayConfig, TrackingConfig
# The command's own tags for every run it starts or resumes (rt_ray.invocation: see end_interrupted_runs).
from rt_ray.console import current

MAX_PARAM_CHARS = 500


def resolve_tracking_uri(cfg: TrackingConfig) -> str:
    return cfg.resolved_uri()


def _mlflow(cfg: TrackingConfig):
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(cfg))
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        # Artifacts beside the local store, not in the current working directory's default.
        location = None
        uri = resolve_tracking_uri(cfg)
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(cfg.experiment, artifact_location=location)
    mlflow.set_experiment(cfg.experiment)
    return mlflow


def config_params(cfg: RtRayConfig) -> dict[str, str]:
    return {key: str(value)[:MAX_PARAM_CHARS] for key, value in cfg.flat().items()}


@contextmanager
def tracked_run(
    cfg: RtRayConfig, stage: str, run_name: str | None = None, parent_run_id: str | None = None, tags: dict | None = None
) -> Iterator[str]:
    """An MLflow run for one stage, with the resolved config (which holds no secret) as params."""
    mlflow = _mlflow(cfg.tracking)
    all_tags = {"rt_ray.stage": stage, "rt_ray.task": cfg.task.name, **current().run_tags, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = mlflow.start_run(run_name=run_name or f"{cfg.run_name}-{stage}", tags=all_tags, nested=bool(parent_run_id))
    with _ended_by_outcome(mlflow):
        mlflow.log_params(config_params(cfg))
        yield run.info.run_id


@contextmanager
def _ended_by_outcome(mlflow) -> Iterator[None]:
    """End the active run FINISHED, FAILED, or KILLED when Ctrl-C stopped it (MLflow's own context
    manager would say FAILED)."""
    try:
        yield
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        # A run someone else already ended KILLED (a sweep scheduler that stopped the trial, whose
        # workers then fail under it) stays KILLED.
        run = mlflow.active_run()
        killed = run is not None and mlflow.get_run(run.info.run_id).info.status == "KILLED"
        mlflow.end_run("KILLED" if killed else "FAILED")
        raise
    mlflow.end_run()


def log_metrics(metrics: dict, step: int | None = None) -> None:
    import mlflow

    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numeric:
        mlflow.log_metrics(numeric, step=step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def set_tags(tags: dict) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_metrics_to_run(tracking_uri: str, run_id: str, metrics: dict, step: int) -> None:
    """From a Ray worker (rank 0): metrics into the driver's run, by id, without an active run."""
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    entries = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float))]
    MlflowClient(tracking_uri=tracking_uri).log_batch(run_id, metrics=entries)


@contextmanager
def resumed_run(cfg: TrackingConfig, run_id: str) -> Iterator[str]:
    mlflow = _mlflow(cfg)
    mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    with _ended_by_outcome(mlflow):
        if current().run_tags:
            mlflow.set_tags(current().run_tags)  # this invocation works in it now (see end_interrupted_runs)
        yield run_id


def recorded_parent_run(cfg: RtRayConfig, state_path: Path, stage: str, fingerprint: str | None = None) -> str:
    """A resumable stage's MLflow parent run (a sweep's, an experiment's): the one ``state_path`` records
    when the same work resumes (the same ``fingerprint``), so that its children stay together; else a
    new one, recorded there beside whatever else the file holds. Resume it to log into it."""
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("parent_run_id") and state.get("fingerprint") == fingerprint:
        return state["parent_run_id"]
    with tracked_run(cfg, stage=stage, run_name=f"{cfg.run_name}-{stage}") as run_id:
        pass
    state_path.write_text(json.dumps({**state, "parent_run_id": run_id, "fingerprint": fingerprint}))
    return run_id


def end_run(cfg: TrackingConfig, run_id: str, status: str) -> None:
    """End a run its own process cannot end (a Tune trial the scheduler stopped): FINISHED, FAILED or KILLED."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=resolve_tracking_uri(cfg)).set_terminated(run_id, status)


def end_interrupted_runs(cfg: TrackingConfig, invocation: str) -> int:
    """Mark KILLED every run still RUNNING that this invocation started, or that descends from one
    (Tune trials and Ray workers start theirs as children); returns how many."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        return 0
    ids = [experiment.experiment_id]
    mine = {run.info.run_id for run in client.search_runs(ids, f"tags.`rt_ray.invocation` = '{invocation}'")}
    running = client.search_runs(ids, "attributes.status = 'RUNNING'")
    grew = True
    while grew:
        children = {r.info.run_id for r in running if r.data.tags.get("mlflow.parentRunId") in mine} - mine
        mine |= children
        grew = bool(children)
    ended = [r.info.run_id for r in running if r.info.run_id in mine]
    for run_id in ended:
        client.set_terminated(run_id, "KILLED")
    return len(ended)


def log_student_model(model_dir: str | Path, registered_name: str | None) -> str | None:
    """Log a saved student with MLflow's transformers flavor; register it when a name is given.
    Returns the registered model version, if any."""
    import mlflow

    from rt_ray.artifacts import load_student

    model, tokenizer, meta = load_student(model_dir)
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name="student",
        task="text-generation" if meta["arch"] == "decoder" else "text2text-generation",
        registered_model_name=registered_name,
        # Explicit, so MLflow does not probe for optional packages (torchvision, ...) it would pin.
        pip_requirements=["torch", "transformers", "tokenizers", "safetensors"],
    )
    mlflow.log_dict(meta, "student/rt_ray_student.json")  # the folder may be at a URI: log what was read
    return str(info.registered_model_version) if registered_name else None


def load_logged_student(model_uri: str, tracking_uri: str | None):
    """(model, tokenizer, meta) of a student logged with the transformers flavor, e.g.
    models:/name@champion; meta is its rt_ray_student.json (log_student_model keeps it beside the
    model in the run), empty if the run has none."""
    import json
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    components = mlflow.transformers.load_model(model_uri, return_type="components")
    client = MlflowClient(tracking_uri=tracking_uri)
    meta: dict = {}
    try:
        run_id = _run_of_model(client, model_uri)
        with tempfile.TemporaryDirectory() as directory:
            meta = json.loads(Path(client.download_artifacts(run_id, "student/rt_ray_student.json", directory)).read_text())
    except (MlflowException, OSError, ValueError):
        pass
    return components["model"], components["tokenizer"], meta


def _run_of_model(client, model_uri: str) -> str:
    """The run that logged ``models:/name@alias``, ``models:/name/version`` or ``runs:/id/...``."""
    if model_uri.startswith("runs:/"):
        return model_uri[len("runs:/"):].split("/", 1)[0]
    name, _, rest = model_uri[len("models:/"):].partition("/")
    if "@" in name:
        name, alias = name.split("@", 1)
        return client.get_model_version_by_alias(name, alias).run_id
    return client.get_model_version(name, rest.split("/", 1)[0]).run_id


def champion_uri(cfg: TrackingConfig, registered_name: str, alias: str = "champion") -> str | None:
    """``models:/<name>@champion`` when the registry has that alias, else None (an absent local store
    is not created by asking)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(cfg)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None
    try:
        MlflowClient(tracking_uri=uri).get_model_version_by_alias(registered_name, alias)
    except MlflowException:
        return None
    return f"models:/{registered_name}@{alias}"


def set_alias(cfg: TrackingConfig, registered_name: str, alias: str, version: str | None) -> None:
    from mlflow.tracking import MlflowClient

    if version is not None:
        MlflowClient(tracking_uri=resolve_tracking_uri(cfg)).set_registered_model_alias(registered_name, alias, version)
