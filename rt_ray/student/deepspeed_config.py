"""The DeepSpeed config, built by one function from the run's train section.

    build_deepspeed_config(cfg.train)  # -> dict for deepspeed.initialize(config=...)
"""

from __future__ import annotations

from rt_ray.config import TrainConfig


def build_deepspeed_config(train: TrainConfig) -> dict:
    zero: dict = {"stage": train.zero_stage}
    if train.offload and train.zero_stage >= 2:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": train.use_gpu}
    if train.offload and train.zero_stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": train.use_gpu}
    if train.zero_stage == 3:
        # Export consolidated weights at checkpoints (gathered on rank 0).
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": train.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": train.precision == "bf16"},
        "fp16": {"enabled": train.precision == "fp16"},
        # Our torch AdamW is used on every device, offload included, so CPU runs need no compiled op.
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def warmup_then_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warmup to 1, then linear decay to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(1, total_steps - warmup_steps)
    return max(0.0, (total_steps - step) / remaining)
