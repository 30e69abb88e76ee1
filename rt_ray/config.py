"""One typed config per run, loaded from YAML, validated by pydantic, overridden with ``--set``.

    cfg = load_config("configs/quickstart.yaml", overrides=["generation.degree=4"])

Sections are named by stage. Secrets never live here: the teacher's API key is read from the
environment variable named by ``teacher.api_key_env``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rt_ray.errors import UserError
from rt_ray.storage import is_remote


class ConfigError(UserError, ValueError):
    """A config that cannot run; the message names the key or value at fault."""


def _output_location(value: Any) -> Any:
    """A URI (``s3://bucket/prefix``) stays a string; anything else is a local path."""
    return value if isinstance(value, str) and is_remote(value) else Path(value)


# Where a stage writes: a local folder, or an object-store URI its files are uploaded to (rt_ray/storage.py).
OutputLocation = Annotated[Path | str, BeforeValidator(_output_location)]


def _local_folder(value: Any) -> Any:
    if isinstance(value, str) and is_remote(value):
        raise ValueError("must be a local or shared-filesystem folder (object-store URIs work for "
                         "train, sweep and experiment output_dir)")  # fmt: skip
    return value


# A folder that is appended to or read in place (the teacher's parts and cache): no object-store URI.
LocalFolder = Annotated[Path, BeforeValidator(_local_folder)]


class Section(BaseModel):
    # Unknown keys are typos until proven otherwise.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# The paper's three BIG-bench task files ship with the package (tasks/data/bigbench/NOTICE.md).
SHIPPED_BIGBENCH = Path(__file__).resolve().parent / "tasks" / "data" / "bigbench"


class TaskConfig(Section):
    name: str = "coin_flip"
    # Generated tasks (coin_flip, last_letter_concatenation): how many questions and items each.
    num_examples: int = Field(500, gt=0)
    num_items: int = Field(4, gt=0, description="flips per coin question, names per last-letter question")
    generation_seed: int = 0
    # File tasks: BIG-bench task JSON files live in bigbench_dir; the others in data_dir.
    bigbench_dir: LocalFolder = SHIPPED_BIGBENCH
    data_dir: LocalFolder = Path("data")
    # Map our fields (question, answer, choices, context, rationale, ...) to the file's column names.
    fields: dict[str, str] = {}
    # Load the task from the Hugging Face hub with `datasets` instead of local files.
    from_hub: bool = False
    # A custom task (name: custom): the team's own questions in a file or URI (.jsonl, .json, .csv,
    # .parquet; OpenAI's chat fine-tuning JSONL too), or `hub: name[:config]` through `datasets`.
    path: OutputLocation | None = None
    test_path: OutputLocation | None = Field(None, description="the team's own test split; else the seeded split")
    hub: str | None = None
    answer_type: Literal["number", "choice", "yes_no", "text"] | None = None
    instructions: str | None = Field(None, description="placed before every teacher prompt")
    train_ratio: float = Field(0.7, gt=0, lt=1)
    split_seed: int = 0
    max_train: int | None = Field(None, gt=0, description="cap on training questions (after the split)")
    max_test: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _custom_task_is_whole(self) -> "TaskConfig":
        custom_only = [key for key in ("path", "test_path", "hub", "answer_type", "instructions") if getattr(self, key)]
        if self.name != "custom":
            if custom_only:
                raise ValueError(f"task.{custom_only[0]} is for task.name custom (task.name is {self.name!r})")
            return self
        if not (self.path or self.hub):
            raise ValueError("task.name custom needs task.path (a file or URI of questions) or task.hub (name[:config])")
        if self.answer_type is None:
            raise ValueError("task.name custom needs task.answer_type: number, choice, yes_no or text")
        return self


class Price(Section):
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)
    batch_discount: float = Field(0.5, gt=0, le=1, description="what the Batch API charges, as a share of these prices")


SIMULATOR_MODEL = "teacher-sim"


class SimulatorConfig(Section):
    """The offline teacher (``rt-ray teacher-sim``); started by ``rt-ray generate`` when autostart is on
    and the teacher *is* the simulator (``teacher.model: teacher-sim``), never in place of another model."""

    autostart: bool = False
    latency_s: float = Field(0.05, ge=0)
    latency_jitter_s: float = Field(0.0, ge=0)
    wrong_rate: float = Field(0.2, ge=0, le=1)
    fault_rate: float = Field(0.0, ge=0, le=1)
    seed: int = 0


class TeacherConfig(Section):
    base_url: str = "http://127.0.0.1:8765/v1"
    model: str = SIMULATOR_MODEL
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str = "OPENAI_API_KEY"
    supports_n: bool = True
    mode: Literal["online", "batch"] = Field(
        "online", description="online: requests as the run goes; batch: the provider's Batch API (files of requests, "
        "results within completion_window, at the batch discount)")  # fmt: skip
    batch_max_requests: int = Field(50_000, gt=0, description="batch mode: requests per input file (OpenAI: 50,000)")
    batch_max_bytes: int = Field(200 * 2**20, gt=0, description="batch mode: bytes per input file (OpenAI: 200 MB)")
    batch_poll_s: float = Field(30.0, gt=0, description="batch mode: seconds between status polls")
    batch_completion_window: str = "24h"
    prompts_per_request: int = Field(20, gt=0, description="completions API: a question's answer-extraction prompts "
                                     "sent together in one request, as the paper's code did; 1 sends one each")  # fmt: skip
    max_concurrency: int = Field(64, gt=0, description="requests in flight across the whole run")
    num_callers: int = Field(1, gt=0, description="Ray actors that make the calls")
    caller_cpus: float = Field(0.25, gt=0, description="CPUs per caller actor; calls are I/O bound")
    rpm: int | None = Field(None, gt=0, description="requests per minute, shared by every caller")
    tpm: int | None = Field(None, gt=0, description="tokens per minute, shared by every caller")
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    request_timeout_s: float = Field(60.0, gt=0)
    cache_dir: LocalFolder = Path(".rt_ray_cache/teacher")
    prices: dict[str, Price] = {
        "teacher-sim": Price(input_per_1m=0.5, output_per_1m=1.5),
        "gpt-4o-mini": Price(input_per_1m=0.15, output_per_1m=0.6),
        "gpt-4o": Price(input_per_1m=2.5, output_per_1m=10.0),
        "gpt-3.5-turbo-instruct": Price(input_per_1m=1.5, output_per_1m=2.0),
    }
    max_cost_usd: float | None = Field(None, gt=0, description="stop before this run's new spend passes it")
    simulator: SimulatorConfig = SimulatorConfig()

    @model_validator(mode="after")
    def _budget_needs_a_price(self) -> "TeacherConfig":
        if self.max_cost_usd is not None and self.model not in self.prices:
            raise ValueError(
                f"teacher.max_cost_usd is set but teacher.prices has no entry for model {self.model!r}"
            )
        return self


class GenerationConfig(Section):
    degree: int = Field(1, gt=0, description="D: rationales sampled per training question")
    temperature: float = Field(0.7, ge=0, le=2, description="used when degree > 1; degree 1 is greedy")
    max_tokens_rationale: int = Field(128, gt=0)
    max_tokens_answer: int = Field(32, gt=0)
    answer_from: Literal["second_call", "rationale"] = Field(
        "second_call", description="second_call: the paper's greedy 'Therefore, the answer is' request per rationale; "
        "rationale: the answer the rationale itself states, no second request (a documented deviation)")  # fmt: skip
    split: Literal["train", "test"] = Field(
        "train", description="the questions the teacher answers: train (the student's training set) or test (the "
        "teacher's own test accuracy, as the paper reports it; such a set is never trained on)")  # fmt: skip
    questions_per_block: int = Field(16, gt=0, description="questions per Ray Data block")
    part_every_s: float = Field(
        5.0, gt=0, description="seconds between part files of finished questions: at most what a killed run "
        "redoes (from the cache) when it resumes")  # fmt: skip
    output_dir: LocalFolder = Path("runs/default/teacher")


class LoraSettings(Section):
    r: int = Field(8, gt=0, description="rank of the adapter matrices")
    alpha: float = Field(16, gt=0, description="the update is alpha / r x B A")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        [], description="modules to adapt; empty: peft's default for the architecture (GPT-2: c_attn; T5: q, v)")
    export: Literal["merged", "adapter"] = Field(
        "merged", description="merged: plain Hugging Face weights with the adapter folded in (serving, MLflow); "
        "adapter: the adapter alone (and the base, for a tiny student), folded in when loaded")  # fmt: skip


class StudentConfig(Section):
    # A hub name or local path (from_pretrained), or "tiny" for a small model built from a config.
    model: str = "tiny"
    arch: Literal["decoder", "encoder-decoder"] = "decoder"
    format: Literal["ft_cot", "vanilla"] = "ft_cot"
    tiny_hidden: int = Field(128, gt=0)
    tiny_layers: int = Field(4, gt=0)
    tiny_heads: int = Field(4, gt=0)
    tiny_vocab: int = Field(600, gt=0)
    max_length: int = Field(512, gt=0)
    max_new_tokens: int = Field(128, gt=0, description="generation budget at evaluation")
    eval_batch_size: int = Field(32, gt=0)
    eval_replicas: int = Field(2, gt=0, description="model replicas (Ray Data actors) that evaluate")
    eval_cpus: float = Field(1, gt=0, description="CPUs per evaluation replica")
    eval_gpus: float = Field(0, ge=0, description="GPUs per evaluation replica (0: CPU)")
    registered_name: str = Field("rt-ray-student", description="MLflow Model Registry name")
    lora: LoraSettings | None = Field(None, description="LoRA adapters through peft (pip install 'rt-ray[lora]'); off when absent")


class TrainConfig(Section):
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1, gt=0)
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, gt=0, description="per worker")
    grad_accum: int = Field(1, gt=0)
    max_steps: int = Field(300, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory for a large student, ~30 % more compute"
    )
    stream_above_samples: int = Field(
        200_000, ge=0, description="above this many samples each worker streams its shard from Ray Data (memory "
        "flat in the set's size); at or below it a worker holds its shard in memory (one Ray Data pass, faster)")  # fmt: skip
    shuffle_buffer: int = Field(10_000, gt=0, description="samples in a streaming worker's local shuffle buffer")
    bucket_batches: int = Field(
        0, ge=0, description="length-bucketed batches (a set held in memory): each window of this many batches is "
        "sorted by length before it is cut, so a batch pads less; 0: plain shuffled batches")  # fmt: skip
    seed: int = 0
    usd_per_hour: float = Field(0.2, ge=0, description="what the training machines cost an hour together (the cost case)")
    validation_size: int = Field(
        0, ge=0, description="training questions held out of training and scored by the workers every "
        "validate_every_steps (greedy answers, judged as evaluation judges them); 0: none")  # fmt: skip
    validate_every_steps: int = Field(100, gt=0)
    early_stopping_patience: int | None = Field(
        None, gt=0, description="stop after this many validations in a row without a better accuracy, so that "
        "max_steps is a cap rather than the budget (needs validation_size)")  # fmt: skip
    checkpoint_every_steps: int = Field(100, gt=0)
    max_failures: int = Field(2, ge=0)
    output_dir: OutputLocation = Path("runs/default/student")

    @model_validator(mode="after")
    def _patience_needs_validation(self) -> "TrainConfig":
        if self.early_stopping_patience is not None and not self.validation_size:
            raise ValueError("train.early_stopping_patience needs train.validation_size (the questions it watches)")
        return self


class CurveAxes(Section):
    """The axes a learning curve runs along, defined once for ``rt-ray sweep`` and ``rt-ray experiment``:
    how many training questions, and which student. An empty list or mapping keeps the config's own
    train split and student section. (D, the third axis, is each command's ``degrees``.)"""

    train_sizes: list[Annotated[int, Field(gt=0)]] = Field(
        [], description="training questions per point: nested prefixes of the (seeded, shuffled) train split left "
        "after the validation hold-out, so that smaller points use a subset of larger points' questions")  # fmt: skip
    students: dict[str, dict[str, Any]] = Field(
        {}, description="named students, label -> student.* overrides, e.g. {small: {student.tiny_hidden: 64}}")

    @model_validator(mode="after")
    def _axes_are_well_formed(self) -> "CurveAxes":
        if len(set(self.train_sizes)) != len(self.train_sizes):
            raise ValueError(f"train_sizes has a size twice: {self.train_sizes}")
        if any(d < 1 for d in getattr(self, "degrees", [])):
            raise ValueError(f"degrees must be >= 1, got {self.degrees}")
        for label, overrides in self.students.items():
            if "/" in label or not label.strip():
                raise ValueError(f"students: {label!r} is not a usable label (it names folders and runs)")
            stray = [key for key in (overrides or {}) if not key.startswith("student.")]
            if stray:
                raise ValueError(f"students.{label}: {stray[0]!r} is not a student.* key (a student is its section)")
        return self


class SweepConfig(CurveAxes):
    degrees: list[int] = Field([1, 2, 4, 8], min_length=1, description="diversity degrees D to train on")
    # Other knobs; a list sweeps them, an empty list keeps the train/student section's value.
    lrs: list[float] = []
    max_steps: list[int] = []
    student_models: list[str] = Field([], description="student.model names to sweep (students: whole named students)")
    lora_ranks: list[Annotated[int, Field(gt=0)]] = Field(
        [], description="LoRA ranks r to sweep: turns student.lora on (its other settings, or the defaults)")
    search: Literal["grid", "random"] = "grid"
    num_samples: int = Field(1, gt=0, description="grid: repeats of the grid; random: trials drawn")
    metric: Literal["validation_accuracy", "test_accuracy"] = "validation_accuracy"
    validation_size: int = Field(50, gt=0, description="training questions held out to select on")
    max_concurrent_trials: int = Field(1, gt=0, description="trials at once; each also needs train.num_workers")
    scheduler: Literal["fifo", "asha"] = Field(
        "fifo", description="fifo: every trial trains its full budget; asha: Tune's ASHAScheduler stops trials whose "
        "validation accuracy trails the others' at each rung (needs report_every_steps)")  # fmt: skip
    report_every_steps: int | None = Field(
        None, gt=0, description="validation accuracy every N training steps, from the training workers (greedy "
        "generation on the held-out questions, a few seconds each for a tiny student); None: once, after training")  # fmt: skip
    asha_grace_steps: int | None = Field(None, gt=0, description="steps a trial trains before asha may stop it; "
                                         "default: report_every_steps")  # fmt: skip
    asha_reduction_factor: float = Field(2.0, gt=1, description="asha keeps about 1 / factor of the trials at each rung")
    output_dir: OutputLocation = Path("runs/default/sweep")

    @model_validator(mode="after")
    def _asha_needs_validation_reports(self) -> "SweepConfig":
        if self.scheduler == "asha" and self.report_every_steps is None:
            raise ValueError("sweep.scheduler asha needs sweep.report_every_steps (how often trials report validation accuracy)")
        if self.scheduler == "asha" and self.metric != "validation_accuracy":
            raise ValueError("sweep.scheduler asha stops trials on validation_accuracy; set sweep.metric to it")
        return self


class ServeConfig(Section):
    # A trained student folder (local, or a URI: s3://bucket/run/model), an MLflow model URI (models:/<name>@champion) or a hub name;
    # None serves train.output_dir/model.
    model: str | None = None
    model_name: str = Field("rt-ray-student", description="the id /v1/models reports and requests name")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    max_batch_size: int = Field(16, gt=0, description="dynamic batching: requests per generate() call")
    batch_wait_timeout_s: float = Field(0.02, ge=0, description="how long a batch waits to fill")
    num_replicas: int = Field(1, gt=0)
    autoscaling_max_replicas: int | None = Field(None, gt=0, description="set to autoscale 1..max on load")
    num_cpus: float = Field(1, gt=0, description="per replica")
    num_gpus: float = Field(0, ge=0, description="per replica")
    max_tokens_cap: int = Field(256, gt=0, description="largest max_tokens a request may ask for")
    usd_per_hour: float = Field(0.2, ge=0, description="what the machine a replica runs on costs an hour (the cost case); "
                                "default: a small CPU VM")
    max_prompt_chars: int = Field(4000, gt=0)
    api_key_env: str | None = Field(None, description="env variable holding the bearer token; None: no auth")


# Set by Ray for the driver of a job submitted with `ray job submit`.
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class TrackingConfig(Section):
    # None: MLFLOW_TRACKING_URI if set, else a local SQLite store in the working directory.
    tracking_uri: str | None = None
    experiment: str = "rt-ray"

    def resolved_uri(self, base: Path | None = None) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        if os.environ.get(RAY_JOB_ENV):
            raise ConfigError(
                "this Ray job has no MLflow tracking URI, and the default ./mlflow.db would be written into Ray's "
                "temporary copy of the working directory, which Ray deletes; set MLFLOW_TRACKING_URI (the nodes' "
                "environment, or env_vars in jobs/runtime_env.yaml) or tracking.tracking_uri"
            )
        return f"sqlite:///{((base or Path.cwd()) / 'mlflow.db').resolve()}"


class PipelineConfig(Section):
    """What ``rt-ray pipeline`` runs after the teacher stage."""

    sweep: bool = Field(True, description="sweep D (sweep section); false: one train with the train section")
    baselines: bool = Field(True, description="also measure the zero-shot student and a vanilla fine-tune")
    deploy: bool = Field(True, description="deploy the champion on Ray Serve and send sample queries")
    sample_queries: int = Field(3, ge=0, description="test questions sent to the deployed student")
    cost_probe_requests: int = Field(64, ge=0, description="requests of the load probe that prices the served student's "
                                     "answers (at serve.max_batch_size concurrent); 0: no cost case")
    keep_serving: bool = Field(False, description="leave the deployment up when the pipeline ends")
    output_dir: LocalFolder = Path("runs/default/pipeline")


class ExperimentConfig(CurveAxes):
    """``rt-ray experiment``: the paper's comparison (zero-shot, vanilla, Fine-tune-CoT at each D) per task, over
    seeds; with train_sizes or students, at every point of their product (learning curves)."""

    # Column label -> dotted overrides of this config for that task, e.g.
    # {"coin_flip": {"task.name": "coin_flip", "train.max_steps": 400}}.
    tasks: dict[str, dict[str, Any]] = {}
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="student seeds (init and data order)")
    degrees: list[int] = Field([1, 4], min_length=1, description="Fine-tune-CoT degrees D; 1 is greedy-like Fine-tune-CoT")
    max_minutes: float | None = Field(None, gt=0, description="start no run that would end past this many minutes "
                                      "(judged by the longest run so far); the report covers what is done, a rerun goes on")  # fmt: skip
    output_dir: OutputLocation = Path("runs/default/experiment")


class RayConfig(Section):
    # None starts (or joins, through RAY_ADDRESS) a local cluster; "auto" joins a running one.
    address: str | None = None


class RtRayConfig(Section):
    run_name: str = "default"
    # Where each command's log file goes (Ray's, Tune's and the libraries' output); None: runs/<run_name>/logs.
    log_dir: Path | None = None
    task: TaskConfig = TaskConfig()
    teacher: TeacherConfig = TeacherConfig()
    generation: GenerationConfig = GenerationConfig()
    student: StudentConfig = StudentConfig()
    train: TrainConfig = TrainConfig()
    sweep: SweepConfig = SweepConfig()
    serve: ServeConfig = ServeConfig()
    tracking: TrackingConfig = TrackingConfig()
    pipeline: PipelineConfig = PipelineConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    ray: RayConfig = RayConfig()

    def flat(self) -> dict[str, Any]:
        """Every value as ``section.key`` -> value, for MLflow params. Holds no secret by design."""
        return _flatten(self.model_dump(mode="json"))

    def with_absolute_paths(self, base: Path | None = None) -> "RtRayConfig":
        """A copy whose relative paths are resolved against ``base`` (default: this process's working
        directory), for Ray workers, Tune trials and Serve replicas, which run elsewhere. ``load_config``
        calls it; a config built in code (``parse_config``) calls it before it runs a stage."""
        base = Path(base or Path.cwd())
        tree = self.model_dump()
        for section_name, section in tree.items():
            if isinstance(section, dict):
                for key, value in section.items():
                    if isinstance(value, Path):
                        section[key] = (base / value).resolve()
        # The default MLflow store is a file in the working directory, too.
        tree["tracking"]["tracking_uri"] = self.tracking.resolved_uri(base)
        return RtRayConfig.model_validate(tree)

    def with_values(self, **sections: dict[str, Any]) -> "RtRayConfig":
        """A validated copy with some keys of some sections changed: ``cfg.with_values(train={"seed": 1})``."""
        tree = self.model_dump(mode="json")
        for section, values in sections.items():
            tree[section].update(values)
        return parse_config(tree)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]

    def fingerprint_of(self, *keys: str, upstream: str = "") -> str:
        """A short hash of the values under some sections or ``section.key``s, chained to the fingerprint
        of what they were built from: what a stage's output depends on, so a rerun can tell whether
        that output still holds. Keys that only place or pace the work (NOT_INPUTS) are left out."""
        picked = {
            name: value
            for name, value in self.flat().items()
            if any(name == key or name.startswith(f"{key}.") for key in keys)
            and name.rsplit(".", 1)[-1] not in NOT_INPUTS and name not in TASK_LOCATIONS
        }
        text = json.dumps([upstream, picked], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# Where outputs go and how fast they are made; changing these never changes a stage's result.
NOT_INPUTS = frozenset({"output_dir", "cache_dir", "max_concurrent_trials", "checkpoint_every_steps", "max_failures",
                        "max_concurrency", "num_callers", "caller_cpus", "rpm", "tpm", "max_retries", "backoff_base_s",
                        "backoff_max_s", "request_timeout_s", "questions_per_block", "part_every_s", "max_cost_usd",
                        "prompts_per_request", "mode", "batch_max_requests", "batch_max_bytes", "batch_poll_s",
                        "batch_completion_window", "usd_per_hour"})  # fmt: skip
# Where a task's data is read from: its content enters the teacher's fingerprint instead (teacher_fingerprint),
# so an edited file is a new task and the same file reached by another path is the same one.
TASK_LOCATIONS = frozenset({"task.path", "task.test_path", "task.data_dir", "task.bigbench_dir"})
# What the teacher's rationales depend on (the degree aside: a finished run at D=8 holds D=4's).
TEACHER_INPUTS = ("task", "teacher.base_url", "teacher.model", "teacher.api", "teacher.supports_n", "generation.temperature",
                  "generation.max_tokens_rationale", "generation.max_tokens_answer", "generation.answer_from")  # fmt: skip


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` to a nested dict; the value is parsed as YAML (``4``, ``true``, ``[1, 2]``)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    set_dotted(tree, dotted, yaml.safe_load(raw) if raw.strip() else None, origin="--set")


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, origin: str = "override") -> None:
    """Set ``tree[a][b][c] = value`` for ``a.b.c``, creating sections on the way."""
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"{origin} has an empty key in {dotted!r}")
    node = tree
    for key in keys[:-1]:
        if node.get(key) is None:  # an optional section that is off (student.lora: null) is absent
            node[key] = {}
        child = node[key]
        if not isinstance(child, dict):
            raise ConfigError(f"{origin} {dotted}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One line for one problem, else a line a problem under a header: each names the key at fault."""
    problems = []
    for problem in err.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        if problem["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        else:
            got = problem.get("input")
            shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
            problems.append(f"{key}: {problem['msg'].removeprefix('Value error, ')}{shown}")
    if len(problems) == 1:
        return f"invalid config ({source}): {problems[0]}"
    return "\n".join([f"invalid config ({source}):", *(f"  {line}" for line in problems)])


def parse_config(tree: dict[str, Any], source: str = "config") -> RtRayConfig:
    try:
        return RtRayConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: Path | None = None) -> RtRayConfig:
    """The config a command runs with: the file (or the embedded defaults), the overrides, and its
    relative paths resolved against ``base`` (default: the working directory). Paths are resolved here,
    once, so that Ray workers, Tune trials and Serve replicas, which run elsewhere, read the same ones."""
    tree: dict[str, Any] = {}
    source = "embedded defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if tree is None:
            raise ConfigError(f"config file {path} is empty; give at least one section, or leave out -c for the embedded defaults")
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        source = str(path)
    for assignment in overrides or []:
        apply_override(tree, assignment)
    return parse_config(tree, source).with_absolute_paths(base)
