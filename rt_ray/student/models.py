"""Students: any Hugging Face causal LM or encoder-decoder, or a tiny one built from a config.

    spec = student_spec(cfg.student, texts=training_texts)   # trains a BPE tokenizer for "tiny"
    model, tokenizer = build_student(spec, seed=0)           # same weights on every worker
    save_student(model, tokenizer, "runs/x/model", meta)     # Hugging Face format
    model, tokenizer, meta = rt_ray.artifacts.load_student("runs/x/model")   # the folder's reader

A spec is a small JSON-able dict, so Ray workers on any node can rebuild the same student
without a shared filesystem: a hub name or path, or a model config plus the tokenizer's JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rt_ray.artifacts import BASE_DIR, META_FILE, auto_model_class
from rt_ray.config import ConfigError, StudentConfig

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on the task's own text, wrapped as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def tiny_model_config(cfg: StudentConfig, tokenizer) -> dict:
    common = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if cfg.arch == "decoder":
        return {
            "model_type": "gpt2", "n_embd": cfg.tiny_hidden, "n_layer": cfg.tiny_layers, "n_head": cfg.tiny_heads,
            "n_positions": cfg.max_length, "bos_token_id": tokenizer.eos_token_id, **common,
        }  # fmt: skip
    return {
        "model_type": "t5", "d_model": cfg.tiny_hidden, "d_ff": 4 * cfg.tiny_hidden, "d_kv": cfg.tiny_hidden // cfg.tiny_heads,
        "num_layers": cfg.tiny_layers, "num_decoder_layers": cfg.tiny_layers, "num_heads": cfg.tiny_heads,
        "decoder_start_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True, **common,
    }  # fmt: skip


def student_spec(cfg: StudentConfig, texts: list[str]) -> dict[str, Any]:
    if cfg.model != "tiny":
        return {"arch": cfg.arch, "pretrained": cfg.model}
    tokenizer = train_tokenizer(texts, cfg.tiny_vocab)
    return {
        "arch": cfg.arch,
        "model_config": tiny_model_config(cfg, tokenizer),
        "tokenizer_json": tokenizer.backend_tokenizer.to_str(),
    }


def load_tokenizer(spec: dict[str, Any]):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if "pretrained" in spec:
        tokenizer = AutoTokenizer.from_pretrained(spec["pretrained"])
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # GPT-2 ships without one
        return tokenizer
    from tokenizers import Tokenizer

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(spec["tokenizer_json"]), pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def build_student(spec: dict[str, Any], seed: int = 0):
    """The untrained student: from_pretrained for a hub name or path, else from config (seeded)."""
    import torch
    from transformers import AutoConfig

    model_class = auto_model_class(spec["arch"])
    tokenizer = load_tokenizer(spec)
    if "pretrained" in spec:
        return model_class.from_pretrained(spec["pretrained"]), tokenizer
    settings = dict(spec["model_config"])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(seed)
    return model_class.from_config(config), tokenizer


def enable_gradient_checkpointing(model) -> None:
    """Keep only each layer's inputs in the forward pass and recompute the rest in the backward pass.
    Non-reentrant checkpointing: it needs no input that requires grad (a student's token ids do not),
    works under ZeRO-3's parameter hooks, and restores the RNG state, so dropout masks and the loss
    curve stay those of the same run without it."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5; 4.x has the old one
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False  # a cache of keys and values is what checkpointing gives up


def save_student(model, tokenizer, path: str | Path, meta: dict, state_dict: dict | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, state_dict=state_dict)
    tokenizer.save_pretrained(path)
    (path / META_FILE).write_text(json.dumps(meta, indent=2))
    return path




def require_peft() -> None:
    """Checked by the driver before a LoRA run starts, so the error is one line, not a failed worker group."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError("student.lora needs peft, which is not installed: pip install 'rt-ray[lora]'") from None


def add_lora(model, lora: dict, arch: str):
    """The student with LoRA adapters (peft) on ``lora["target_modules"]``: only the adapters train."""
    from peft import LoraConfig, TaskType, get_peft_model

    settings = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"] or None,  # None: peft's default for the model type
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores its weights transposed
        task_type=TaskType.CAUSAL_LM if arch == "decoder" else TaskType.SEQ_2_SEQ_LM,
    )
    return get_peft_model(model, settings)


def parameter_counts(model) -> dict[str, int]:
    """Trainable and total parameters (before DeepSpeed: ZeRO-3 partitions them to empty tensors)."""
    return {
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
    }


def save_lora_student(model, tokenizer, path: str | Path, meta: dict, state_dict: dict, spec: dict, seed: int,
                      lora: dict, merged: bool) -> Path:  # fmt: skip
    """A LoRA student's folder from the training model's full state dict (``state_dict``, consolidated
    under ZeRO-3). merged: the adapter folded into plain Hugging Face weights, built on a fresh copy
    since the training model holds only this rank's partition under ZeRO-3. Otherwise the adapter's
    weights, plus the untrained base of a student without a hub name (rebuilt from its spec and seed)."""
    path = Path(path)
    if merged:
        fresh = add_lora(build_student(spec, seed)[0], lora, spec["arch"])
        missing, unexpected = fresh.load_state_dict(state_dict, strict=False)
        if unexpected or any("lora_" in key for key in missing):
            raise RuntimeError(f"LoRA export does not fit the student: missing {missing}, unexpected {unexpected}")
        return save_student(fresh.merge_and_unload(), tokenizer, path, meta)
    save_student(model, tokenizer, path, meta, state_dict=state_dict)  # a PeftModel saves its adapter only
    if "pretrained" not in spec:
        build_student(spec, seed)[0].save_pretrained(path / BASE_DIR)
    return path
