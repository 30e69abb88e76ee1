"""The OpenAI-compatible request and response shapes, and the checks against the server's caps.

Pure pydantic: the FastAPI app turns a ``RequestError`` into a 400 with OpenAI's error body.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RequestError(ValueError):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send fields we do not use (logprobs, user, ...)

    model: str | None = None
    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    stream: bool = False

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(Sampling):
    prompt: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)

    def prompt(self) -> str:
        # The student was trained on questions, not dialogues: its prompt is the last user turn.
        users = [m.content for m in self.messages if m.role == "user"]
        if not users:
            raise RequestError("messages must contain a user message", "messages")
        return users[-1]


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    question: str


def check_limits(prompt: str, sampling: Sampling, max_tokens_cap: int, max_prompt_chars: int) -> None:
    if not prompt.strip():
        raise RequestError("prompt must not be empty", "prompt")
    if len(prompt) > max_prompt_chars:
        raise RequestError(f"prompt has {len(prompt)} characters; the limit is {max_prompt_chars}", "prompt")
    if sampling.max_tokens > max_tokens_cap:
        raise RequestError(f"max_tokens {sampling.max_tokens} is above this server's cap of {max_tokens_cap}", "max_tokens")


def apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def completion_body(model: str, choices: list[dict], prompt_tokens: int, completion_tokens: int, chat: bool) -> dict:
    return {
        "id": new_id("chatcmpl" if chat else "cmpl"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},  # fmt: skip
    }


def split_rationale(text: str, prefix: str = "-->") -> str:
    """The rationale part of a Fine-tune-CoT output: everything before the answer arrow."""
    return text.split(prefix, 1)[0].strip()
