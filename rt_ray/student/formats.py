"""Student sample formats of Fine-tune-CoT (Ho et al., 2023), as (input, target) text pairs.

    ft_cot_sample("Is the coin still heads up?", "Alice flips it ...", "no", "decoder")
    # -> ("Is the coin still heads up? ###", " Alice flips it ... --> no")

The decoder target gets the tokenizer's EOS token when tokenized; T5's tokenizer adds </s> itself.
"""

from __future__ import annotations

from typing import Literal

from rt_ray.tasks.answers import FT_COT_PREFIX

Arch = Literal["decoder", "encoder-decoder"]
QUESTION_SUFFIX = " ###"


def student_input(question: str, arch: Arch) -> str:
    return f"{question}{QUESTION_SUFFIX}" if arch == "decoder" else question


def ft_cot_sample(question: str, rationale: str, answer: str, arch: Arch) -> tuple[str, str]:
    body = f"{rationale.strip()} {FT_COT_PREFIX} {answer}"
    return student_input(question, arch), (f" {body}" if arch == "decoder" else body)


def vanilla_sample(question: str, answer: str, arch: Arch) -> tuple[str, str]:
    return student_input(question, arch), (f" {answer}" if arch == "decoder" else answer)


def zero_shot_prompt(question: str, arch: Arch) -> str:
    return f"Q: {question}\n\nA:" if arch == "decoder" else f"question: {question}"
