"""What one stage hands the next, typed: read by attribute, frozen, and turned into JSON (records,
reports) in one place each. Both sides import these; none imports a stage.

    sweep = run_sweep(cfg)                 # SweepResult, its trials ranked best first
    sweep.best.degree, sweep.best.model_dir
    Champion.of_trial(sweep.best)          # what the pipeline deploys
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Score:
    """Test accuracy over ``n`` questions."""

    accuracy: float
    n: int


@dataclass(frozen=True)
class TrialResult:
    """A finished sweep trial: its knobs (``params``, D among them) and what it measured."""

    params: dict
    validation_accuracy: float
    test_accuracy: float
    train_samples: int
    trial_time_s: float
    model_dir: str
    mlflow_run_id: str

    @property
    def degree(self) -> int:
        return self.params["degree"]

    def metric(self, name: str) -> float:
        """The sweep's metric by its config name (sweep.metric: validation_accuracy or test_accuracy)."""
        return {"validation_accuracy": self.validation_accuracy, "test_accuracy": self.test_accuracy}[name]


@dataclass(frozen=True)
class StoppedTrial:
    """A trial the scheduler (ASHA) stopped before its budget: where, and the steps that saved."""

    params: dict
    step: int
    steps_saved: int
    validation_accuracy: float


@dataclass(frozen=True)
class SweepResult:
    trials: tuple[TrialResult, ...]  # ranked by the sweep's metric, best first
    knobs: tuple[str, ...]  # the knobs besides D that vary
    plot: str
    parent_run_id: str
    champion_version: str | None
    stopped_early: tuple[StoppedTrial, ...] = ()

    @property
    def best(self) -> TrialResult:
        return self.trials[0]

    @property
    def steps_saved(self) -> int:
        return sum(t.steps_saved for t in self.stopped_early)

    def as_record(self) -> dict:
        return {**asdict(self), "steps_saved": self.steps_saved}

    @classmethod
    def from_record(cls, record: dict) -> "SweepResult":
        return cls(tuple(TrialResult(**t) for t in record["trials"]), tuple(record["knobs"]), record["plot"], record["parent_run_id"],
                   record.get("champion_version"), tuple(StoppedTrial(**t) for t in record.get("stopped_early", [])))  # fmt: skip


@dataclass(frozen=True)
class Champion:
    """The student the pipeline deploys, with the score it is reported at."""

    model_dir: str
    label: str
    format: str  # ft_cot or vanilla: its evaluation names it so
    score: Score
    overrides: dict = field(default_factory=dict)  # train-section values it was trained with: baselines get the same budget
    train_time_s: float = 0.0

    @classmethod
    def of_trial(cls, trial: TrialResult) -> "Champion":
        overrides = {k: trial.params[k] for k in ("lr", "max_steps") if k in trial.params}
        return cls(trial.model_dir, f"Fine-tune-CoT, D={trial.degree}", "ft_cot", Score(trial.test_accuracy, 0), overrides)

    def as_report(self) -> dict:
        """report.json's ``champion``: the score's fields beside the rest."""
        return {"model_dir": self.model_dir, "label": self.label, "accuracy": self.score.accuracy, "n": self.score.n,
                "overrides": self.overrides, "train_time_s": self.train_time_s}  # fmt: skip

    def rescored(self, score: Score) -> "Champion":
        """The same champion at the score its baselines' evaluation gave it (the same questions as theirs)."""
        return replace(self, score=score)


@dataclass(frozen=True)
class Baselines:
    """The champion re-scored beside the untrained student and a vanilla (answer-only) fine-tune."""

    champion: Score
    zero_shot: Score | None = None
    vanilla: Score | None = None

    @classmethod
    def from_results(cls, results: dict, champion_format: str) -> "Baselines":
        """From the evaluate stage's results (format -> {"accuracy", "n", ...}), where the champion is the
        entry of its own format (a vanilla champion is then its own vanilla: no separate baseline)."""

        def score(name: str) -> Score | None:
            return Score(results[name]["accuracy"], results[name]["n"]) if name in results and name != champion_format else None

        own = results[champion_format]
        return cls(Score(own["accuracy"], own["n"]), score("zero_shot"), score("vanilla"))
