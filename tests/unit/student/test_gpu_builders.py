"""What differs on a GPU, checked without one: the DeepSpeed config, the resources each Ray worker
asks for, the collective backend, and the device of every tensor the student stage builds. Tensors
are built on PyTorch's ``meta`` device (shapes, no memory): a builder that ignores the device it is
given leaves them on the CPU, which is what would break under NCCL or beside a CUDA model."""

from __future__ import annotations

import pytest
import torch

from rt_ray.config import ServeConfig, StudentConfig, TrainConfig
from rt_ray.devices import replica_device, torch_backend
from rt_ray.student.deepspeed_config import build_deepspeed_config
from tests.tiny import save_untrained_student

META = torch.device("meta")


def test_a_gpu_run_trains_in_bf16_with_the_torch_optimizer_so_no_op_is_compiled():
    ds = build_deepspeed_config(TrainConfig(use_gpu=True, precision="bf16", zero_stage=2))
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    # No "optimizer" section: DeepSpeed would build its own (FusedAdam, a just-in-time compiled op).
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["zero_force_ds_cpu_optimizer"] is False  # offload keeps torch's AdamW instead of CPUAdam (compiled)


@pytest.mark.parametrize("use_gpu", [True, False])
def test_offloaded_states_are_pinned_only_where_there_is_a_gpu_to_copy_to(use_gpu):
    zero = build_deepspeed_config(TrainConfig(use_gpu=use_gpu, zero_stage=3, offload=True))["zero_optimization"]
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": use_gpu}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": use_gpu}


def test_gpu_workers_talk_nccl_and_each_asks_ray_for_one_gpu():
    from ray.train import ScalingConfig

    from rt_ray.student.trainer import worker_resources

    assert (torch_backend(True), torch_backend(False)) == ("nccl", "gloo")
    gpu = ScalingConfig(**worker_resources(TrainConfig(use_gpu=True, num_workers=8, cpus_per_worker=4)))
    assert gpu.use_gpu and gpu.num_workers == 8
    assert gpu._resources_per_worker_not_none == {"CPU": 4, "GPU": 1}
    cpu = ScalingConfig(**worker_resources(TrainConfig(use_gpu=False, num_workers=2, cpus_per_worker=1)))
    assert not cpu.use_gpu and cpu._resources_per_worker_not_none == {"CPU": 1}


def test_evaluation_replicas_ask_for_their_gpu_share_and_compute_only_where_given_one():
    from rt_ray.student.evaluate import replica_resources, replica_settings

    shared = StudentConfig(eval_gpus=0.5, eval_cpus=2)
    assert replica_resources(shared) == {"num_cpus": 2, "num_gpus": 0.5}
    assert replica_settings(shared) == {"threads": 2, "device": "cuda"}
    # A CPU replica on a GPU node still sees every GPU (Ray leaves CUDA_VISIBLE_DEVICES alone): it must stay on the CPU.
    assert replica_resources(StudentConfig(eval_gpus=0, eval_cpus=1)) == {"num_cpus": 1}
    assert replica_settings(StudentConfig(eval_gpus=0, eval_cpus=1))["device"] == "cpu"


def test_a_serve_replica_asks_for_its_gpus_and_computes_on_what_it_was_given():
    from rt_ray.serve.app import deployment_options

    assert deployment_options(ServeConfig(num_gpus=1, num_cpus=4))["ray_actor_options"] == {"num_cpus": 4, "num_gpus": 1}
    assert (replica_device(1), replica_device(0.25), replica_device(0)) == ("cuda", "cuda", "cpu")


def test_the_evaluation_replica_puts_its_model_on_the_device_it_is_given(tmp_path):
    from rt_ray.student.evaluate import StudentPredictor

    model_dir = save_untrained_student(tmp_path / "model")
    predictor = StudentPredictor({"path": str(model_dir)}, "ft_cot", 8, threads=1, device="meta")
    assert {p.device for p in predictor.model.parameters()} == {META}


def test_the_tensors_a_training_worker_all_reduces_live_on_its_device():
    from rt_ray.student.train_loop import window_tensors

    counts, peak_rss = window_tensors(120, [2.0, 1.5], META)
    assert counts.device == META and peak_rss.device == META
    cpu_counts, _ = window_tensors(120, [2.0, 1.5], "cpu")
    assert cpu_counts.tolist() == [120.0, 3.5, 2.0]


@pytest.mark.parametrize("arch", ["decoder", "encoder-decoder"])
def test_the_export_probe_is_built_on_the_engines_device(arch):
    from rt_ray.student.models import train_tokenizer
    from rt_ray.student.train_loop import probe_inputs

    tokenizer = train_tokenizer(["A coin is heads up. Is it still heads up? yes"] * 20, 300)
    inputs = probe_inputs(tokenizer, arch, META)
    assert {t.device for t in inputs.values()} == {META}


class RecordingInputs(torch.nn.Module):
    """A real model that records the device of what generate() is handed, then generates with the
    CPU as the default device again."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config, self.seen = model, model.config, set()

    @property
    def device(self):
        return self.inner.device

    def generate(self, **inputs):
        self.seen |= {t.device for t in inputs.values() if isinstance(t, torch.Tensor)}
        with torch.device("cpu"):
            return self.inner.generate(**inputs)


def test_generation_builds_its_inputs_on_the_models_device(tmp_path):
    from rt_ray.artifacts import load_student
    from rt_ray.student.generation import generate_texts

    model, tokenizer, meta = load_student(save_untrained_student(tmp_path / "model"))
    recording = RecordingInputs(model.eval())
    with torch.device("meta"):  # a tensor built without naming the model's device lands here
        outputs = generate_texts(recording, tokenizer, meta["arch"], ["A coin is heads up. ###", "Is it? ###"], 4)
    assert recording.seen == {torch.device("cpu")} and len(outputs) == 2


REPO = __import__("pathlib").Path(__file__).resolve().parents[3]
GPU_CONFIGS = ["configs/gpu-qwen-0.5b.yaml", "configs/gpu-qwen-0.5b-lora.yaml", "bench/gpu/pipeline.yaml"]


@pytest.mark.parametrize("path", GPU_CONFIGS)
def test_the_shipped_gpu_configs_build_gpu_workers_and_a_bf16_deepspeed_config(path):
    from rt_ray.config import load_config
    from rt_ray.student.trainer import worker_resources

    cfg = load_config(REPO / path)
    assert cfg.train.use_gpu and torch_backend(cfg.train.use_gpu) == "nccl"
    assert worker_resources(cfg.train)["resources_per_worker"]["GPU"] == 1
    assert build_deepspeed_config(cfg.train)["bf16"]["enabled"]


def test_the_lora_gpu_config_adapts_every_projection_and_serves_merged_weights_from_a_gpu():
    from rt_ray.config import load_config

    cfg = load_config(REPO / "configs/gpu-qwen-0.5b-lora.yaml")
    assert cfg.student.lora.export == "merged" and {"q_proj", "v_proj", "down_proj"} <= set(cfg.student.lora.target_modules)
    assert replica_device(cfg.student.eval_gpus) == replica_device(cfg.serve.num_gpus) == "cuda"


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(path):
    from rt_ray.config import load_config

    load_config(REPO / path)
