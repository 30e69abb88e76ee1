"""Where a Ray worker computes, decided by what Ray gave it, never by what it can see.

    replica_device(cfg.student.eval_gpus)   # "cuda" for a replica given (a share of) a GPU, else "cpu"
    torch_backend(cfg.train.use_gpu)        # the collective backend of the training workers

Ray sets CUDA_VISIBLE_DEVICES only for the tasks and actors it gives GPUs to; one given none on a GPU
node still sees every GPU there (ray._private.utils.set_visible_accelerator_ids skips it), so a
``torch.cuda.is_available()`` test would move a CPU replica onto a GPU that Ray lent to someone else.
"""

from __future__ import annotations


def replica_device(num_gpus: float) -> str:
    return "cuda" if num_gpus > 0 else "cpu"


def torch_backend(use_gpu: bool) -> str:
    """NCCL between GPU workers; gloo on CPU. Every tensor a worker all-reduces must live on the
    backend's device (NCCL has no CPU path)."""
    return "nccl" if use_gpu else "gloo"
