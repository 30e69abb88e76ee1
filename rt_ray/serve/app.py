"""The serve stage: the distilled student behind Ray Serve with an OpenAI-compatible API.

    rt-ray serve -c configs/quickstart.yaml              # local: Ray Serve on serve.host:serve.port
    serve deploy serve_configs/student.yaml              # a running cluster (import_path: build_app)

Routes: POST /v1/completions, POST /v1/chat/completions (both with n, max_tokens, temperature,
top_p, stop, usage and SSE streaming), GET /v1/models, POST /v1/solve ({task, question} ->
{rationale, answer, raw}) and GET /healthz. The model runs in a process of its own that batches
requests as it frees up (serve/model_process.py and serve/batching.py say why, and why not ``@serve.batch``).
"""
# No `from __future__ import annotations` here: Ray Serve's class-based FastAPI views need the
# route signatures' annotations as real types.


import asyncio
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import SecretStr
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from rt_ray.artifacts import META_FILE
from rt_ray.config import ConfigError, RtRayConfig, ServeConfig, load_config
from rt_ray.devices import replica_device
from rt_ray.serve.model_process import ModelProcess
from rt_ray.serve.schemas import (
    ChatRequest, CompletionRequest, RequestError, Sampling, SolveRequest, apply_stop, check_limits,
    completion_body, error_param, new_id, split_rationale,
)  # fmt: skip
from rt_ray.storage import is_remote, join, remote_files
from rt_ray.student.formats import student_input
from rt_ray.student.generation import Generated, PromptTooLong, encode_prompt, new_token_room
from rt_ray.tasks.answers import FT_COT_PREFIX

logger = logging.getLogger("rt_ray.serve")
FALLBACK_MAX_TOKENS = 128  # default max_tokens for a model that does not say (a hub model, an older student)
app = FastAPI(title="rt-ray student", description="A Fine-tune-CoT student behind an OpenAI-compatible API")


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
           code: str | None = None) -> JSONResponse:  # fmt: skip
    # OpenAI's error body: `code` is a string (or null), never the HTTP status.
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


@app.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return _error(400, "request body is not valid JSON", "body")
    param = error_param(tuple(problem["loc"]))
    if param == "body":
        return _error(400, "request body must be a JSON object", "body")
    return _error(400, f"{param}: {problem['msg']}", param)


@app.exception_handler(RequestError)
async def _request_error(request: Request, error: RequestError) -> JSONResponse:
    code = {401: "invalid_api_key", 404: "model_not_found"}.get(error.status)
    return _error(error.status, str(error), error.param, code=code)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Unknown routes (404) and wrong methods (405) get OpenAI's error body too, not FastAPI's."""
    if error.status_code == 404:
        return _error(404, f"no route {request.method} {request.url.path}", code="unknown_url")
    if error.status_code == 405:
        return _error(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")
    return _error(error.status_code, str(error.detail))


@app.exception_handler(Exception)
async def _server_error(request: Request, error: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    logger.exception("request failed (error id %s)", error_id)
    return _error(500, f"internal error, id {error_id}", kind="server_error")


def sse_chunk(stream_id: str, model: str, delta: str, finish: str | None, chat: bool) -> str:
    if chat:
        choice = {"index": 0, "delta": {"content": delta} if delta else {}, "finish_reason": finish}
        body = {"id": stream_id, "object": "chat.completion.chunk", "model": model, "choices": [choice]}
    else:
        body = {"id": stream_id, "object": "text_completion", "model": model,
                "choices": [{"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


@serve.deployment
@serve.ingress(app)
class StudentServer:
    def __init__(self, settings: dict[str, Any]):
        self.cfg = ServeConfig.model_validate(settings["serve"])
        self.model = ModelProcess(settings["model_source"], settings.get("tracking_uri"), threads=max(1, int(self.cfg.num_cpus)),
                                  max_batch_size=self.cfg.max_batch_size, wait_s=self.cfg.batch_wait_timeout_s,
                                  device=replica_device(self.cfg.num_gpus))  # fmt: skip
        self.tokenizer, self.arch, self.meta = self.model.tokenizer, self.model.arch, self.model.meta
        # A request without max_tokens gets room for the student's typical output (measured on its
        # training targets, stored with the model), so a default request reaches the answer.
        self.default_max_tokens = min(self.cfg.max_tokens_cap, int(self.meta.get("default_max_tokens") or FALLBACK_MAX_TOKENS))
        token = settings.get("api_key")
        self.api_key = token.get_secret_value() if token is not None else None

    def check_health(self) -> None:
        """Serve's periodic health check: a replica whose model process died is replaced."""
        if not self.model.alive():
            raise RuntimeError("the model process is gone")

    def __del__(self) -> None:
        if hasattr(self, "model"):
            self.model.close()

    def _authorize(self, authorization: str | None) -> None:
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            raise RequestError("missing or invalid bearer token", status=401)

    async def _complete(self, prompt: str, max_tokens: int, sampling: Sampling) -> list[Generated]:
        runs = (self.model.generate(prompt, max_tokens, sampling.temperature, sampling.top_p) for _ in range(sampling.n))
        return list(await asyncio.gather(*runs))

    def _check(self, prompt: str, max_tokens: int, sampling: Sampling, param: str = "prompt") -> None:
        check_limits(prompt, max_tokens, self.cfg.max_tokens_cap, self.cfg.max_prompt_chars, param)
        try:
            new_token_room(self.model.context, self.arch, len(encode_prompt(self.tokenizer, prompt, self.arch)), max_tokens)
        except PromptTooLong as error:
            raise RequestError(str(error), param) from None
        if sampling.model not in (None, self.cfg.model_name):
            raise RequestError(f"model {sampling.model!r} is not served here; this server has {self.cfg.model_name!r}", "model", 404)
        if sampling.stream and sampling.n > 1:
            raise RequestError("stream supports n=1 only", "n")

    def _returned(self, output: Generated, stops: list[str]) -> tuple[str, str, int]:
        """(text, finish_reason, completion tokens) of what the client gets: cut at a stop sequence,
        and counted as what is returned, not as what was generated past the stop."""
        text, stopped = apply_stop(output.text, stops)
        if not stopped:
            return text, output.finish_reason, output.completion_tokens
        return text, "stop", len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_text(self, prompt: str | list[int]) -> str:
        if isinstance(prompt, str):
            return prompt
        vocab = len(self.tokenizer)
        if any(not 0 <= token < vocab for token in prompt):
            raise RequestError(f"prompt holds token ids outside this model's vocabulary (0..{vocab - 1})", "prompt")
        return self.tokenizer.decode(prompt)

    def _chat_prompt(self, question: str) -> str:
        """The conversation's question in the student's own input format, as a chat template would
        put it (``question ###`` for a decoder trained by rt-ray); a hub model gets it as it is."""
        return student_input(question, self.arch) if self.meta.get("format") else question

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(self, authorization: str | None = Header(None)) -> dict:
        self._authorize(authorization)
        return {"object": "list", "data": [self._model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(self, model_id: str, authorization: str | None = Header(None)) -> dict:
        self._authorize(authorization)
        if model_id != self.cfg.model_name:
            raise RequestError(f"model {model_id!r} is not served here; this server has {self.cfg.model_name!r}", "model", 404)
        return self._model_card()

    def _model_card(self) -> dict:
        student = {"format": self.meta.get("format"), "arch": self.arch, "task": self.meta.get("task"),
                   "default_max_tokens": self.default_max_tokens}  # fmt: skip
        return {"id": self.cfg.model_name, "object": "model", "created": 0, "owned_by": "rt-ray", "rt_ray": student}

    @app.post("/v1/completions")
    async def completions(self, body: CompletionRequest, authorization: str | None = Header(None)):
        self._authorize(authorization)
        prompts = [self._prompt_text(prompt) for prompt in body.prompts()]
        budget = body.token_budget(self.default_max_tokens)
        for prompt in prompts:
            self._check(prompt, budget, body)
        if body.stream:
            if len(prompts) > 1:
                raise RequestError("stream supports one prompt at a time", "prompt")
            return self._stream(prompts[0], budget, body, chat=False)
        per_prompt = await asyncio.gather(*(self._complete(prompt, budget, body) for prompt in prompts))
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for outputs in per_prompt:  # OpenAI's order: prompt i's n choices at indexes i*n .. i*n+n-1
            prompt_tokens += outputs[0].prompt_tokens
            for output in outputs:
                text, finish, tokens = self._returned(output, body.stops())
                completion_tokens += tokens
                choices.append({"index": len(choices), "text": text, "logprobs": None, "finish_reason": finish})
        return completion_body(self.cfg.model_name, choices, prompt_tokens, completion_tokens, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(self, body: ChatRequest, authorization: str | None = Header(None)):
        self._authorize(authorization)
        prompt = self._chat_prompt(body.question())
        budget = body.token_budget(self.default_max_tokens)
        self._check(prompt, budget, body, param="messages")
        if body.stream:
            return self._stream(prompt, budget, body, chat=True)
        outputs = await self._complete(prompt, budget, body)
        choices, completion_tokens = [], 0
        for index, output in enumerate(outputs):
            text, finish, tokens = self._returned(output, body.stops())
            completion_tokens += tokens
            choices.append({"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
        return completion_body(self.cfg.model_name, choices, outputs[0].prompt_tokens, completion_tokens, chat=True)

    @app.post("/v1/solve")
    async def solve(self, body: SolveRequest, authorization: str | None = Header(None)) -> dict:
        """The task endpoint: the student's rationale and the task library's parse of its answer."""
        from rt_ray.tasks import TaskDataError, task_for_answers

        self._authorize(authorization)
        try:
            task = task_for_answers(body.task, self.meta.get("answer_type"))
        except TaskDataError as error:
            raise RequestError(str(error), "task") from None
        check_limits(body.question, 1, self.cfg.max_tokens_cap, self.cfg.max_prompt_chars, param="question")
        sampling = Sampling()
        prompt = student_input(body.question, self.arch)
        self._check(prompt, self.cfg.max_tokens_cap, sampling, param="question")
        (output,) = await self._complete(prompt, self.cfg.max_tokens_cap, sampling)
        return {"task": task.name, "rationale": split_rationale(output.text), "answer": task.parse(output.text, prefix=FT_COT_PREFIX),
                "raw": output.text}  # fmt: skip

    def _stream(self, prompt: str, max_tokens: int, sampling: Sampling, chat: bool) -> StreamingResponse:
        return StreamingResponse(self._sse(prompt, max_tokens, sampling, chat), media_type="text/event-stream")

    async def _sse(self, prompt: str, max_tokens: int, sampling: Sampling, chat: bool) -> AsyncIterator[str]:
        """Real token streaming: the model process sends each piece as generate() writes it; we relay them as SSE."""
        pieces = self.model.stream(prompt, max_tokens, sampling.temperature, sampling.top_p)
        stream_id, text, stops = new_id("chatcmpl" if chat else "cmpl"), "", sampling.stops()
        try:
            async for piece in pieces:
                text += piece
                cut, stopped = apply_stop(text, stops)
                delta = piece if not stopped else cut[len(text) - len(piece):]
                if delta:
                    yield sse_chunk(stream_id, self.cfg.model_name, delta, None, chat)
                if stopped:
                    break
        finally:
            await pieces.aclose()
        yield sse_chunk(stream_id, self.cfg.model_name, "", "stop", chat)
        yield "data: [DONE]\n\n"


def deployment_options(cfg: ServeConfig) -> dict:
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
        # Enough requests in flight per replica for a batch to fill.
        "max_ongoing_requests": 4 * cfg.max_batch_size,
    }
    if cfg.autoscaling_max_replicas:
        options["autoscaling_config"] = {"min_replicas": 1, "max_replicas": cfg.autoscaling_max_replicas,
                                         "target_ongoing_requests": cfg.max_batch_size}  # fmt: skip
    else:
        options["num_replicas"] = cfg.num_replicas
    return options


def read_serve_token(cfg: ServeConfig) -> SecretStr | None:
    """The bearer token, read where the app is built and handed to replicas masked (never logged)."""
    if not cfg.api_key_env:
        return None
    token = os.environ.get(cfg.api_key_env)
    if not token:
        raise ConfigError(f"serve.api_key_env names {cfg.api_key_env}, which is not set in the environment")
    return SecretStr(token)


def looks_local(source: str) -> bool:
    """A filesystem path rather than a hub id (``gpt2``, ``Qwen/Qwen2.5-0.5B``) or an MLflow URI."""
    if source.startswith(("models:/", "runs:/")):
        return False
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or Path(source).exists()


def has_student_folder(location: str) -> bool:
    try:
        return META_FILE in remote_files(location)
    except OSError as error:  # no such bucket, no credentials: said in the error the caller raises
        logger.warning("cannot list %s: %s", location, error)
        return False


def served_model_source(cfg: RtRayConfig) -> str:
    """serve.model; without one, what the last pipeline or sweep of this config produced: the
    registry's champion of student.registered_name, else the train stage's model folder."""
    from rt_ray.progress import say
    from rt_ray.tracking import champion_uri

    model = cfg.serve.model
    if model:
        if is_remote(model):
            if not has_student_folder(model):
                raise ConfigError(f"serve.model: no rt-ray student folder at {model} (no {META_FILE})")
        elif looks_local(model) and not Path(model).expanduser().is_dir():
            raise ConfigError(f"serve.model: no model folder at {model}")
        return model
    champion = champion_uri(cfg.tracking, cfg.student.registered_name)
    if champion is not None:
        say(f"serving {champion}: the champion of the last pipeline or sweep of this config (set serve.model to choose)")
        return champion
    folder = join(cfg.train.output_dir, "model")
    if is_remote(folder):
        found = has_student_folder(folder)
    else:
        folder = folder.resolve()
        found = folder.is_dir()
    if found:
        say(f"serving {folder}: the train stage's student (set serve.model to choose)")
        return str(folder)
    raise ConfigError(
        f"nothing to serve: no champion of {cfg.student.registered_name!r} in the MLflow registry and no model in "
        f"{folder}; run `rt-ray pipeline` (or sweep, or train) with this config first, or set serve.model"
    )


def app_from_config(cfg: RtRayConfig):
    from rt_ray.tracking import resolve_tracking_uri

    source = served_model_source(cfg)
    settings = {"serve": cfg.serve.model_dump(mode="json"), "model_source": source,
                "tracking_uri": resolve_tracking_uri(cfg.tracking), "api_key": read_serve_token(cfg.serve)}  # fmt: skip
    return StudentServer.options(**deployment_options(cfg.serve)).bind(settings)


def deploy_student(cfg: RtRayConfig) -> str:
    """Serve's HTTP proxy on serve.host:serve.port and the student as application ``student`` at ``/``,
    on the configured cluster; returns the base URL. The app outlives this process on a running cluster."""
    from rt_ray.cluster import ensure_ray

    ensure_ray(cfg.ray)
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    serve.run(app_from_config(cfg), name="student", route_prefix="/")
    return f"http://{cfg.serve.host}:{cfg.serve.port}"


def build_app(args: dict[str, Any]):
    """Application builder for ``serve run`` / ``serve deploy``: args ``config``, optional ``overrides``
    and ``base_dir``. ``serve deploy`` builds the app in a process whose working directory is not the
    checkout, so a relative config path (and the config's own relative paths) resolve against
    ``base_dir``: by default the working directory when the config is found there, else the rt-ray
    checkout this package was installed from (editable installs, cluster.yaml's file mount)."""
    config = args.get("config")
    found_here = config is not None and Path(config).is_file()
    base = Path(args.get("base_dir") or (Path.cwd() if found_here else Path(__file__).resolve().parents[2]))
    if config is not None and not Path(config).is_absolute():
        config = base / config
    return app_from_config(load_config(config, args.get("overrides") or [], base=base))
