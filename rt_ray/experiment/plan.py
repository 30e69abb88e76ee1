"""The paper's comparison as plain data: which runs, their configs, and the summary of their results.

    methods([1, 4])                 # ["zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d4"]
    summarize(records)              # task -> method -> {"mean", "std", "runs"}
    results_markdown(summary, ...)  # rows: methods; columns: tasks; cells: mean ± std over seeds
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rt_ray.config import ConfigError, ExperimentConfig, RtRayConfig, parse_config, set_dotted
from rt_ray.storage import join, local_dir
from rt_ray.tables import markdown_table

TEACHER = "teacher"


def ft_cot_method(degree: int) -> str:
    return f"ft_cot_d{degree}"


def methods(degrees: list[int]) -> list[str]:
    return ["zero_shot", "vanilla", *(ft_cot_method(d) for d in sorted(set(degrees)))]


def task_configs(base: RtRayConfig) -> dict[str, RtRayConfig]:
    """One config per task column, each with its own output folders; a bad override names its task and key."""
    exp = base.experiment
    if not exp.tasks:
        raise ConfigError("experiment.tasks is empty: name at least one task, e.g. {coin_flip: {task.name: coin_flip}}")
    configs = {}
    for label, overrides in exp.tasks.items():
        tree = base.model_dump(mode="json")
        for dotted, value in (overrides or {}).items():
            set_dotted(tree, dotted, value, origin=f"experiment.tasks.{label}")
        root = join(exp.output_dir, label)
        tree["run_name"] = f"{base.run_name}-{label}"
        tree["generation"]["degree"] = max(exp.degrees)  # every D trains on a prefix of these
        # The teacher's set stays on this node (its parts and cache are appended to); students may go to a URI.
        tree["generation"]["output_dir"] = str(local_dir(root) / "teacher")
        tree["train"]["output_dir"] = str(join(root, "student"))
        configs[label] = parse_config(tree, source=f"experiment.tasks.{label}")
    return configs


@dataclass(frozen=True)
class Point:
    """One run of the experiment: a method and seed, and the student and training size it sits at
    (None: the config's own student, every training question)."""

    method: str
    seed: int | None
    student: str | None = None
    train_size: int | None = None

    @classmethod
    def of(cls, record: dict) -> "Point":
        return cls(record["method"], record["seed"], record.get("student"), record.get("train_size"))

    @property
    def degree(self) -> int | None:
        return int(self.method.removeprefix("ft_cot_d")) if self.method.startswith("ft_cot_d") else None

    def key(self, task: str) -> str:
        """runs.jsonl's identity of the run; without axes the same as before they existed."""
        return "/".join([task, self.method, str(self.seed), *self.axes])

    def folder(self) -> str:
        """The student's folder under the task's: ``small/n160/ft_cot_d4_s0``, or ``ft_cot_d4_s0``."""
        return "/".join([*self.axes, f"{self.method}_s{self.seed}"])

    def describe(self) -> str:
        seed = f" seed {self.seed}" if self.seed is not None else ""
        return " ".join([self.method + seed, *self.axes])

    def fields(self) -> dict:
        """What the record says of its point (axes only where listed)."""
        axes = {"student": self.student, "train_size": self.train_size}
        return {"method": self.method, "seed": self.seed, **{k: v for k, v in axes.items() if v is not None}}

    @property
    def name(self) -> str:
        """``ft_cot_d4/small/n160``: the method with whichever axes the point sits on (the curves' and reports' name)."""
        return "/".join([self.method, *self.axes])

    @property
    def axes(self) -> list[str]:
        return [*([self.student] if self.student is not None else []), *([f"n{self.train_size}"] if self.train_size is not None else [])]


def plan(exp: ExperimentConfig) -> list[Point]:
    """A task's runs: the teacher once, then per seed (outermost, so that a partial result has whole
    seeds), per student: its zero-shot self, and per training size vanilla and Fine-tune-CoT at each D."""
    points = [Point(TEACHER, None)]
    for seed in exp.seeds:
        for student in list(exp.students) or [None]:
            points.append(Point("zero_shot", seed, student))
            for size in sorted(exp.train_sizes) or [None]:
                points += [Point(method, seed, student, size) for method in methods(exp.degrees)[1:]]
    return points


def reference(exp: ExperimentConfig) -> tuple[str | None, int | None]:
    """(student, training size) of the paper's comparison table: the last student listed and the largest size."""
    return (list(exp.students)[-1] if exp.students else None, max(exp.train_sizes) if exp.train_sizes else None)


def at_reference(records: list[dict], exp: ExperimentConfig) -> list[dict]:
    """The runs at the reference point (the teacher's too): the paper's table and claims read these."""
    student, size = reference(exp)
    return [r for r in records if r["method"] == TEACHER or (r.get("student") == student and r.get("train_size") in (None, size))]


def summarize(records: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> method -> {"mean", "std" (sample std over seeds; 0 for one run), "runs"}."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for record in records:
        grouped.setdefault(record["task"], {}).setdefault(record["method"], []).append(record["accuracy"])
    return {
        task: {
            method: {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": len(values)}
            for method, values in by_method.items()
        }
        for task, by_method in grouped.items()
    }


# The paper's three claims, each as (better, than) and the points the gap must reach besides being
# beyond the seed spread with a paired interval above 0. Fine-tune-CoT over vanilla asks for 10:
# the paper's gaps are tens of points, and a few points on a small test split are not its finding.
CLAIMS = {"ft_cot_over_vanilla": 10.0, "diverse_over_d1": 0.0, "student_over_teacher": 0.0}


def findings(summary: dict, degrees: list[int], outcomes: dict | None = None) -> dict[str, dict]:
    """Per task, the paper's claims with the evidence they must clear: Fine-tune-CoT (best D) over
    vanilla, the best D > 1 over D = 1, and the best Fine-tune-CoT student over its teacher. Each
    has the gap in points, whether it is beyond the seed spread, and, given ``outcomes`` (task ->
    method -> per-seed lists of per-question outcomes, see outcome_runs), a paired comparison over
    the test questions (rt_ray.experiment.stats.compare); ``holds`` needs all three."""
    out = {}
    for task, cells in summary.items():
        cot = [ft_cot_method(d) for d in sorted(set(degrees)) if ft_cot_method(d) in cells]
        larger = [m for m in cot if m != ft_cot_method(1)]
        pairs = {}
        if cot and "vanilla" in cells:
            pairs["ft_cot_over_vanilla"] = (max(cot, key=lambda m: cells[m]["mean"]), "vanilla")
        if larger and ft_cot_method(1) in cells:
            pairs["diverse_over_d1"] = (max(larger, key=lambda m: cells[m]["mean"]), ft_cot_method(1))
        if cot and TEACHER in cells:
            pairs["student_over_teacher"] = (max(cot, key=lambda m: cells[m]["mean"]), TEACHER)
        by_method = (outcomes or {}).get(task, {})
        out[task] = {claim: _claim(cells, better, than, by_method, CLAIMS[claim]) for claim, (better, than) in pairs.items()}
    return out


def _claim(cells: dict, better: str, than: str, by_method: dict, min_points: float) -> dict:
    from rt_ray.experiment.stats import compare

    a, b = cells[better], cells[than]
    gap = a["mean"] - b["mean"]
    entry = {"better": better, "than": than, "points": round(100 * gap, 1), "min_points": min_points,
             "beyond_spread": gap > a["std"] + b["std"]}  # fmt: skip
    runs_a, runs_b = by_method.get(better), by_method.get(than)
    if runs_a and runs_b:
        runs_b = runs_b * len(runs_a) if len(runs_b) == 1 else runs_b  # one teacher run pairs with every seed
        entry["paired"] = compare(runs_a, runs_b)
    paired_above_zero = "paired" in entry and entry["paired"]["bootstrap_95"][0] > 0
    entry["holds"] = entry["points"] > min_points and entry["beyond_spread"] and paired_above_zero
    return entry


def outcome_runs(records: list[dict]) -> dict[str, dict[str, list[list[bool]]]]:
    """task -> method -> per-question outcomes of each run (sorted by seed) from the records' ``outcomes``
    strings ("1" right, "0" wrong, in the test split's order); runs recorded without them are left out."""
    grouped: dict[str, dict[str, list]] = {}
    for record in sorted(records, key=lambda r: (r["seed"] is None, r["seed"] or 0)):
        if record.get("outcomes") is not None:
            runs = grouped.setdefault(record["task"], {}).setdefault(record["method"], [])
            runs.append([c == "1" for c in record["outcomes"]])
    return grouped


def outcome_string(predictions: list[dict]) -> str:
    """A run's per-question outcomes, compactly, for runs.jsonl: a character a test question."""
    return "".join("1" if p["correct"] else "0" for p in predictions)


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "—"
    if cell["runs"] == 1:
        return f"{100 * cell['mean']:.1f} (1 run)"
    return f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"


def results_markdown(summary: dict, tasks: list[str], method_names: list[str]) -> str:
    """Rows: methods (teacher first); columns: tasks; cells: test accuracy %, mean ± std over seeds."""
    return markdown_table(["method", *tasks], [[method, *(_cell(summary.get(t, {}).get(method)) for t in tasks)] for method in [TEACHER, *method_names]])


def findings_markdown(found: dict) -> str:
    """One sentence a claim."""
    lines = []
    for task, entry in found.items():
        for claim in entry.values():
            if "axis" in claim:  # a curve's trend: trends_markdown writes it
                continue
            spread = "beyond the seed spread" if claim["beyond_spread"] else "within the seed spread"
            paired = claim.get("paired")
            evidence = (f"paired 95 % interval [{100 * paired['bootstrap_95'][0]:+.1f}, {100 * paired['bootstrap_95'][1]:+.1f}] "
                        f"points over {paired['pairs']} question pairs, McNemar p = {paired['mcnemar_p']:.2g}"
                        if paired else "no paired measure (per-question outcomes not recorded)")  # fmt: skip
            verdict = "holds" if claim["holds"] else "does not hold"
            bar = f" (needs more than {claim['min_points']:.0f} points)" if claim["min_points"] else ""
            lines.append(f"- {task}: {claim['better']} against {claim['than']}: {claim['points']:+.1f} points, {spread}; "
                         f"{evidence}: the finding {verdict}{bar}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def teacher_markdown(records: list[dict]) -> str:
    """Per task: what the teacher's training set offers the students, diversity included."""
    rows = [[r["task"], r["degree"], f"{100 * r.get('teacher_accuracy', 0):.1f}", f"{r.get('yield_per_question', 0):.2f}",
             f"{r.get('distinct_rationales_per_question', float('nan')):.2f}", f"{r.get('rationale_lexical_diversity', float('nan')):.3f}"]
            for r in records if r["method"] == TEACHER and "degree" in r]  # fmt: skip
    header = ["task", "D", "accuracy on training questions", "kept per question", "distinct rationales per question", "lexical diversity"]
    return markdown_table(header, rows) + "\nLexical diversity: mean pairwise Jaccard distance of the word-bigram sets of a question's rationales (0: identical).\n"


def wall_time_markdown(wall_s: float, wall_s_total: float, invocations: int, made: int, reused: int, left: int = 0) -> str:
    """What the whole result cost in wall time, how much of it this command did, and what is still to run."""
    total = f"Wall time: {_minutes(wall_s_total)} for the whole experiment"
    if invocations == 1:
        text = f"{total} (one `rt-ray experiment` command, {made} runs)."
    else:
        text = (f"{total}, over {invocations} `rt-ray experiment` commands; the last took {_minutes(wall_s)}, "
                f"made {made} runs and reused {reused} from runs.jsonl.")  # fmt: skip
    if left:
        text += f" **Partial: {left} runs are still to run** (experiment.max_minutes); the same command goes on."
    return text


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def training_markdown(records: list[dict]) -> str:
    """Per task and trained method, over seeds: steps trained (a cap when early stopping ends runs
    sooner), how many stopped early, and the training wall time: where the budget went."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("steps") is not None:
            grouped.setdefault((r["task"], Point.of(r).name), []).append(r)
    rows = [[task, method, f"{statistics.fmean(r['steps'] for r in runs):.0f}", f"{sum('stopped_early_at_step' in r for r in runs)} of {len(runs)}",
             f"{statistics.fmean(r.get('train_wall_s', 0) for r in runs):.0f}"] for (task, method), runs in grouped.items()]  # fmt: skip
    return markdown_table(["task", "method", "steps (mean)", "stopped early", "training s (mean)"], rows)
