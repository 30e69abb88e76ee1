"""The axes of a learning curve as plain data, one definition for ``rt-ray sweep`` and ``rt-ray experiment``
(their ``CurveAxes`` config): how many training questions a point trains on, and which named student.

    questions_beyond(data.train, validation_size=60, size=160)   # ids a 160-question point leaves out
    with_student(tree, cfg.experiment.students, "small")           # the config tree of that student

A size is a prefix of the training questions left after the validation hold-out. The train split is
already a seeded permutation of the task (``seeded_split``), so prefixes are nested random subsets: a
160-question point trains on a subset of the 320-question point's questions, and one teacher run at
the largest size serves every smaller one from its cache.
"""

from __future__ import annotations

from typing import Any

from rt_ray.config import ConfigError, CurveAxes, RtRayConfig, parse_config, set_dotted


def questions_beyond(train: list, validation_size: int, size: int | None) -> set[str]:
    """Ids of the training questions past the first ``size`` after the first ``validation_size``
    (held out for validation): the questions a point of that size does not train on."""
    rest = train[validation_size:]
    if size is None:
        return set()
    if size > len(rest):
        raise ConfigError(f"train_sizes: {size} training questions asked for, but the task has {len(rest)} "
                          f"after the {validation_size} held out for validation")  # fmt: skip
    return {sample.id for sample in rest[size:]}


def with_student(tree: dict[str, Any], students: dict[str, dict[str, Any]], label: str | None, origin: str) -> dict[str, Any]:
    """``tree`` (a config as a dict) with the named student's overrides applied, in place; None keeps it."""
    if label is not None:
        if label not in students:
            raise ConfigError(f"{origin}: no student named {label!r} (students: {', '.join(students) or 'none'})")
        for dotted, value in (students[label] or {}).items():
            set_dotted(tree, dotted, value, origin=f"{origin}.students.{label}")
    return tree


def check_axes(cfg: RtRayConfig, axes: CurveAxes, validation_size: int, origin: str) -> None:
    """Every size fits the task's training questions and every named student makes a valid config:
    checked before the teacher is paid, not when the point's turn comes."""
    from rt_ray.tasks import load_task_data

    if axes.train_sizes:
        train = load_task_data(cfg.task).train
        for size in axes.train_sizes:
            try:
                questions_beyond(train, validation_size, size)
            except ConfigError as error:
                raise ConfigError(f"{origin}.{error} (task {cfg.task.name})") from None
    for label in axes.students:
        student_config(cfg, axes.students, label, origin)


def student_config(cfg: RtRayConfig, students: dict[str, dict[str, Any]], label: str | None, origin: str) -> RtRayConfig:
    """``cfg`` with the named student (None: ``cfg`` itself); a bad override names the student and key."""
    if label is None:
        return cfg
    return parse_config(with_student(cfg.model_dump(mode="json"), students, label, origin), source=f"{origin}.students.{label}")
