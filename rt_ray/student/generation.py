"""Batched generation with a student: the one place that pads prompts and calls ``generate``.

    outputs = generate_texts(model, tokenizer, "decoder", ["Q? ###"], max_new_tokens=64)
    outputs[0].text, outputs[0].completion_tokens
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS) or "length"


class PromptTooLong(ValueError):
    """A prompt that leaves no room in the model's context for an answer."""


def context_length(model) -> int | None:
    """Prompt plus output tokens a decoder can hold (learned positions); None where positions are relative (T5)."""
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(model.config, name, None)
        if isinstance(value, int):
            return value
    return None


def new_token_room(context: int | None, arch: str, prompt_tokens: int, wanted: int) -> int:
    """How many new tokens fit after a prompt: a decoder's context (``context_length(model)``) bounds
    prompt and output together."""
    limit = context if arch == "decoder" else None
    if limit is None:
        return wanted
    if prompt_tokens >= limit:
        raise PromptTooLong(f"prompt has {prompt_tokens} tokens; the model's context holds {limit}")
    return min(wanted, limit - prompt_tokens)


def sampling_kwargs(temperature: float, top_p: float) -> dict:
    """generate() arguments: greedy at temperature 0, nucleus sampling above it."""
    return {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}


def encode_prompt(tokenizer, prompt: str, arch: str) -> list[int]:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if arch == "encoder-decoder" else ids  # as in training


def generate_texts(
    model, tokenizer, arch: str, prompts: list[str], max_new_tokens: int | list[int], temperature: float = 0.0,
    top_p: float = 1.0,
) -> list[Generated]:
    """One generate() call for all prompts; ``max_new_tokens`` is one budget for all or one per prompt
    (the call runs to the largest; each output is cut to its own)."""
    import torch

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = [encode_prompt(tokenizer, p, arch) for p in prompts]
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    width = max(len(i) for i in ids)
    room = new_token_room(context_length(model), arch, width, max(limits))
    # Decoder students are padded on the left so generation continues right after each prompt;
    # generate() derives position ids from the attention mask.
    left = arch == "decoder"
    padded = [([pad] * (width - len(i)) + i) if left else (i + [pad] * (width - len(i))) for i in ids]
    mask = [([0] * (width - len(i)) + [1] * len(i)) if left else ([1] * len(i) + [0] * (width - len(i))) for i in ids]
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor(padded, device=model.device), attention_mask=torch.tensor(mask, device=model.device),
            max_new_tokens=room,
            pad_token_id=pad, eos_token_id=eos, **sampling_kwargs(temperature, top_p),
        )  # fmt: skip
    new_tokens = output[:, width:] if left else output[:, 1:]  # encoder-decoder output starts with the start token
    results = []
    for prompt_ids, row, limit in zip(ids, new_tokens.tolist(), limits):
        row = row[:limit]
        finished = eos in row
        kept = row[: row.index(eos)] if finished else [t for t in row if t != pad]
        results.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(prompt_ids), len(kept),
                                 "stop" if finished else "length"))  # fmt: skip
    return results
