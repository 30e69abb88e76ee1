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
    # None: the server's default, which fits the served student's typical output (see StudentServer).
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="the chat API's newer name for max_tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    stream: bool = False

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_budget(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(Sampling):
    # Every form the completions API accepts: a string, strings, token ids, or lists of token ids.
    prompt: str | list[str] | list[int] | list[list[int]]

    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt, in order; token-id prompts stay lists for the server to decode."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if not self.prompt:
            raise RequestError("prompt must not be an empty list", "prompt")
        if all(isinstance(item, int) for item in self.prompt):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_call_id, ...

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        others = sorted({part.type for part in self.content if part.type != "text"})
        if others:
            raise RequestError(f"content parts of type {', '.join(others)} are not supported; the student reads text", "messages")
        return "\n".join(part.text or "" for part in self.content)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)

    def question(self) -> str:
        # The student was trained on questions, not dialogues: the conversation's question is its last user turn.
        users = [m.text() for m in self.messages if m.role == "user"]
        if not users:
            raise RequestError("messages must contain a user message", "messages")
        return users[-1]


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    question: str


def check_limits(prompt: str, max_tokens: int, max_tokens_cap: int, max_prompt_chars: int, param: str = "prompt") -> None:
    if not prompt.strip():
        raise RequestError(f"{param} must not be empty", param)
    if len(prompt) > max_prompt_chars:
        raise RequestError(f"{param} has {len(prompt)} characters; the limit is {max_prompt_chars}", param)
    if max_tokens > max_tokens_cap:
        raise RequestError(f"max_tokens {max_tokens} is above this server's cap of {max_tokens_cap}", "max_tokens")


def apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def error_param(location: tuple) -> str:
    """The request field a validation error is about, as OpenAI names it (``messages.0.content``);
    pydantic's union-branch labels (``str``, ``list[int]``, ``ChatMessage``) are not fields."""
    parts = [str(p) for p in location[1:] if isinstance(p, int) or (p.isidentifier() and not p[0].isupper() and p not in TYPE_LABELS)]
    return ".".join(parts) or "body"


TYPE_LABELS = {"str", "int", "float", "bool", "list", "dict", "none"}


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
