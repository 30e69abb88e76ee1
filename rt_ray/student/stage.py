"""The student stage as the CLI runs it: train, evaluate, baselines, MLflow.

    run_train_stage(cfg)      # rt-ray train
    run_evaluate_stage(cfg)   # rt-ray evaluate
"""

from __future__ import annotations

import json
from pathlib import Path

from rt_ray import tracking
from rt_ray.config import RtRayConfig
from rt_ray.locks import output_lock
from rt_ray.student.evaluate import evaluate_student
from rt_ray.artifacts import load_student
from rt_ray.student.trainer import TrainResult, train_student
from rt_ray.storage import join, local_dir, publish


def run_train_stage(cfg: RtRayConfig, resume_from: str | None = None, parent_run_id: str | None = None) -> dict:
    """Fine-tune the configured student, evaluate it on the test split, log and register it."""
    with output_lock(cfg.train.output_dir, "train.output_dir"):
        return _train_evaluate_register(cfg, resume_from, parent_run_id)


def _train_evaluate_register(cfg: RtRayConfig, resume_from: str | None, parent_run_id: str | None) -> dict:
    result: TrainResult = train_student(cfg, resume_from=resume_from, parent_run_id=parent_run_id)
    fmt = cfg.student.format
    out = local_dir(cfg.train.output_dir)
    predictions_path = out / f"predictions_{fmt}.jsonl"
    report, _ = evaluate_student(cfg, {"path": str(result.model_dir)}, mode=fmt, predictions_path=predictions_path)
    with tracking.resumed_run(cfg.tracking, result.mlflow_run_id):
        tracking.log_metrics({f"test_{k}": v for k, v in report.items()})
        tracking.log_artifact(predictions_path, artifact_path="eval")
        version = tracking.log_student_model(result.model_dir, cfg.student.registered_name)
    summary = {"format": fmt, "model_dir": str(result.model_dir), "mlflow_run_id": result.mlflow_run_id,
               "registered_version": version, "train": result.metrics, "test": report}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    publish(cfg.train.output_dir, predictions_path.name, "summary.json")
    return summary


def run_evaluate_stage(cfg: RtRayConfig, model_dir: str | Path | None = None, baselines: bool = True) -> dict:
    """The trained student's test accuracy; with baselines, its zero-shot self and a vanilla fine-tune."""
    model_dir = str(model_dir or join(cfg.train.output_dir, "model"))
    _, _, meta = load_student(model_dir)
    out = local_dir(cfg.train.output_dir)
    results = {}
    with tracking.tracked_run(cfg, stage="evaluate") as run_id:
        report, _ = evaluate_student(cfg, {"path": model_dir}, meta["format"], out / f"predictions_{meta['format']}.jsonl")
        results[meta["format"]] = report
        if baselines:
            spec = meta.get("spec")
            zero_source = {"spec": spec, "seed": cfg.train.seed} if spec else {"path": model_dir}
            results["zero_shot"], _ = evaluate_student(cfg, zero_source, "zero_shot", out / "predictions_zero_shot.jsonl")
            if meta["format"] != "vanilla":
                vanilla = train_student(cfg, fmt="vanilla", output_dir=join(cfg.train.output_dir, "vanilla"),
                                        parent_run_id=run_id)  # fmt: skip
                results["vanilla"], _ = evaluate_student(
                    cfg, {"path": str(vanilla.model_dir)}, "vanilla", out / "predictions_vanilla.jsonl"
                )
        for method, report in results.items():
            tracking.log_metrics({f"{method}_{k}": v for k, v in report.items()})
        for path in out.glob("predictions_*.jsonl"):
            tracking.log_artifact(path, artifact_path="eval")
    (out / "evaluation.json").write_text(json.dumps(results, indent=2))
    publish(cfg.train.output_dir, "evaluation.json", *(p.name for p in out.glob("predictions_*.jsonl")))
    return {"mlflow_run_id": run_id, "results": results}
