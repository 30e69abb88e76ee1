"""Tiny sizes shared by the integration tests: a student that trains in seconds on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

TINY_STUDENT = {"tiny_hidden": 32, "tiny_layers": 2, "tiny_heads": 2, "tiny_vocab": 300}


def coin_flip_run(root: Path, base_url: str, run_name: str, **sections: dict) -> dict:
    """A config tree: coin flip (60 questions, 3 flips), D=2, a tiny student, a store under ``root``."""
    tree = {
        "run_name": run_name,
        "log_dir": str(root / "logs"),
        "task": {"name": "coin_flip", "num_examples": 60, "num_items": 3},
        "teacher": {"base_url": base_url, "cache_dir": str(root / "cache")},
        "generation": {"degree": 2, "output_dir": str(root / "teacher")},
        "student": {**TINY_STUDENT, "max_length": 160, "max_new_tokens": 48, "eval_replicas": 1},
        "train": {"batch_size": 4, "output_dir": str(root / "student")},
        "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": run_name},
    }
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return tree


def save_untrained_student(directory: Path) -> Path:
    """An untrained tiny decoder student in Hugging Face format (APIs need a model, not a good one)."""
    from rt_ray.config import StudentConfig, parse_config
    from rt_ray.student.models import build_student, save_student, student_spec
    from rt_ray.tasks import load_task_data

    texts = [s.question + " --> yes" for s in load_task_data(parse_config({}).task).train[:50]]
    model, tokenizer = build_student(student_spec(StudentConfig(**TINY_STUDENT), texts))
    save_student(model, tokenizer, directory, {"arch": "decoder", "format": "ft_cot"})
    return directory
