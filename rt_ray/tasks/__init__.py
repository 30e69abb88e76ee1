"""The task library: every task's samples, its seeded split, and its answer parsing.

    from rt_ray.tasks import get_task, load_task_data
    data = load_task_data(cfg.task)          # TaskData(train=[Sample...], test=[...])
    task = get_task("coin_flip")
    task.judge(task.parse(" So the answer is no."), "no")   # True
"""

from __future__ import annotations


from rt_ray.config import TaskConfig
from rt_ray.tasks.answers import AnswerType
from rt_ray.tasks.base import Sample, Task, TaskData, TaskDataError, seeded_split
from rt_ray.tasks.bigbench import load_bigbench_choice, load_bigbench_yes_no
from rt_ray.tasks.custom import check_rows, hub_rows, read_custom, summary_line
from rt_ray.tasks.files import FILE_TASKS, load_from_files, load_from_hub
from rt_ray.tasks.generated import load_coin_flip, load_last_letter


def _generated(loader):
    return lambda cfg: loader(cfg.num_examples, cfg.num_items, cfg.generation_seed)


def _file_task(name: str):
    def load(cfg: TaskConfig):
        if cfg.from_hub:
            return load_from_hub(name, cfg.fields)
        return load_from_files(name, cfg.data_dir, cfg.fields)

    return load


TASKS: dict[str, Task] = {
    "coin_flip": Task("coin_flip", AnswerType.YES_NO, _generated(load_coin_flip), "generated, yes/no"),
    "last_letter_concatenation": Task(
        "last_letter_concatenation", AnswerType.TEXT, _generated(load_last_letter), "generated, string"
    ),
    "date_understanding": Task(
        "date_understanding",
        AnswerType.CHOICE,
        lambda cfg: load_bigbench_choice("date_understanding", cfg.bigbench_dir),
        "BIG-bench file, choice A-F over dates",
    ),
    "tracking_shuffled_objects": Task(
        "tracking_shuffled_objects",
        AnswerType.CHOICE,
        lambda cfg: load_bigbench_choice("tracking_shuffled_objects", cfg.bigbench_dir),
        "BIG-bench file, three objects, choice A-C",
    ),
    "strategy_qa": Task(
        "strategy_qa",
        AnswerType.YES_NO,
        lambda cfg: load_bigbench_yes_no("strategy_qa", cfg.bigbench_dir),
        "BIG-bench file, yes/no",
    ),
    **{name: Task(name, spec.answer_type, _file_task(name), "local JSON/JSONL or hub") for name, spec in FILE_TASKS.items()},
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskDataError(f"unknown task.name {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def answer_type_of(cfg: TaskConfig) -> str:
    """The task's answer type: a custom task's from its config, a named task's from the library."""
    return cfg.answer_type if cfg.name == "custom" else get_task(cfg.name).answer_type.value


def task_for_answers(name: str, answer_type: str | None) -> Task:
    """The task that parses a student's answers: a named one, or ``custom`` with the student's answer type."""
    if name != "custom":
        return get_task(name)
    if not answer_type:
        raise TaskDataError("task custom: this student was not trained on a custom task; name its task")
    return Task("custom", AnswerType(answer_type), load=lambda cfg: [], description="custom")


def load_task_data(cfg: TaskConfig) -> TaskData:
    """Train and test samples; a seeded 70/30 split unless the dataset ships its own."""
    if cfg.name == "custom":
        data = load_custom(cfg)
    else:
        loaded = get_task(cfg.name).load(cfg)
        data = TaskData(*loaded) if isinstance(loaded, tuple) else TaskData(*seeded_split(loaded, cfg.train_ratio, cfg.split_seed))
    if cfg.max_train is not None:
        data.train = data.train[: cfg.max_train]
    if cfg.max_test is not None:
        data.test = data.test[: cfg.max_test]
    return data


def load_custom(cfg: TaskConfig) -> TaskData:
    """A team's own file (or hub dataset), every row checked; its test file, else the seeded split."""
    split = "train" if cfg.test_path else "all"
    if cfg.hub:
        rows = check_rows(hub_rows(cfg.hub), f"hub dataset {cfg.hub}", cfg.answer_type, cfg.fields, split)
    else:
        rows = read_custom(cfg.path, cfg.answer_type, cfg.fields, split)
    notes = [summary_line(cfg.path or f"hub dataset {cfg.hub}", rows)]
    if cfg.test_path:
        test_rows = read_custom(cfg.test_path, cfg.answer_type, cfg.fields, "test")
        notes.append(summary_line(cfg.test_path, test_rows))
        in_test = {s.question for s in test_rows.samples}
        train, test = [s for s in rows.samples if s.question not in in_test], test_rows.samples
        if len(train) < len(rows.samples):  # a test question must never be trained on
            notes.append(f"{len(rows.samples) - len(train)} training questions are also in {cfg.test_path}: left out of training")
    else:
        train, test = seeded_split(rows.samples, cfg.train_ratio, cfg.split_seed)
    return TaskData(train, test, instructions=rows.instructions, notes=notes)


__all__ = ["TASKS", "AnswerType", "Sample", "Task", "TaskData", "TaskDataError", "answer_type_of", "get_task", "load_task_data",
           "task_for_answers"]
