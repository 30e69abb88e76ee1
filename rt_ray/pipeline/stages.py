"""The pipeline's stages in order, and what each one's output depends on: no Ray, no MLflow.

    rt-ray pipeline -c CONFIG --from baselines     # keep teacher and student, redo the rest

A stage is reused when its record (``rt_ray.records``) carries the fingerprint computed here; each
fingerprint chains to the one before it, so a changed value reruns its stage and every stage after.
"""

from __future__ import annotations

from rt_ray.config import RtRayConfig

STAGES = ("teacher", "student", "baselines", "deploy")


def student_fingerprint(cfg: RtRayConfig, teacher_fingerprint: str) -> str:
    """One `train` (pipeline.sweep false) or the sweep: the student, its training, its data."""
    sections = ("task", "student", "train", "generation.degree", "pipeline.sweep") + (("sweep",) if cfg.pipeline.sweep else ())
    return cfg.fingerprint_of(*sections, upstream=teacher_fingerprint)


def baselines_fingerprint(cfg: RtRayConfig, student_fingerprint: str) -> str:
    """Zero-shot and vanilla students with the champion's budget: they follow the student stage."""
    return cfg.fingerprint_of("task", "student", "train", upstream=student_fingerprint)


def reruns(stage: str, rerun_from: str | None) -> bool:
    """Whether ``--from rerun_from`` (or ``--force``: the first stage) makes ``stage`` run again."""
    return rerun_from is not None and STAGES.index(stage) >= STAGES.index(rerun_from)
