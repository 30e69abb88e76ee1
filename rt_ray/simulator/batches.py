"""The simulator's Files and Batch APIs, in OpenAI's shapes, so batch mode is tested over real HTTP.

    POST /v1/files (multipart, purpose=batch) · GET /v1/files/{id} · GET /v1/files/{id}/content
    POST /v1/batches · GET /v1/batches/{id} · GET /v1/batches · POST /v1/batches/{id}/cancel

A batch runs its lines through the same solvers as online requests, ``batch_delay_s`` after it is
created. Knobs for the tests: ``batch_fail_rate`` sends that share of lines to the error file,
``batch_expire_first`` lets that many batches expire with half their lines done, and
``batch_api_429s`` answers that many of the first upload calls, and of the first create calls, with a 429.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from rt_ray.simulator.responses import STATE, error_response


TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class BatchState:
    files: dict[str, dict] = field(default_factory=dict)  # id -> {"object": "file", ..., "content": bytes}
    batches: dict[str, dict] = field(default_factory=dict)
    batches_created: int = 0
    lines_served: int = 0
    throttled: dict[str, int] = field(default_factory=dict)  # route -> 429s sent


def _file_object(file_id: str, name: str, size: int, purpose: str) -> dict:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()), "filename": name,
            "purpose": purpose, "status": "processed"}  # fmt: skip


def _store_file(batches: BatchState, name: str, content: bytes, purpose: str) -> dict:
    file_id = f"file-{uuid.uuid4().hex[:16]}"
    batches.files[file_id] = {**_file_object(file_id, name, len(content), purpose), "content": content}
    return batches.files[file_id]


def _public(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "content"}


def _line_result(line: dict, response_for) -> dict:
    body = line.get("body") or {}
    return {"id": f"batch_req_{uuid.uuid4().hex[:12]}", "custom_id": line.get("custom_id"),
            "response": {"status_code": 200, "request_id": uuid.uuid4().hex[:12], "body": response_for(body, line.get("url", ""))},
            "error": None}  # fmt: skip


async def _run_batch(app: web.Application, batch_id: str, response_for) -> None:
    state = app[STATE]
    settings, batches = state.settings, state.batches
    batch = batches.batches[batch_id]
    await asyncio.sleep(settings.batch_delay_s / 2)
    batch.update(status="in_progress", in_progress_at=int(time.time()))
    await asyncio.sleep(settings.batch_delay_s / 2)
    if batch["status"] == "cancelling":
        batch.update(status="cancelled", cancelled_at=int(time.time()))
        return
    lines = [json.loads(raw) for raw in batches.files[batch["input_file_id"]]["content"].decode().splitlines() if raw.strip()]
    expire = batch["_order"] <= settings.batch_expire_first
    if expire:
        lines = lines[: len(lines) // 2]  # the window closed with half of it done
    outputs, errors = [], []
    for line in lines:
        if state.rng.random() < settings.batch_fail_rate:
            errors.append({"id": f"batch_req_{uuid.uuid4().hex[:12]}", "custom_id": line.get("custom_id"), "response": None,
                           "error": {"code": "server_error", "message": "simulated failed line"}})  # fmt: skip
            continue
        outputs.append(_line_result(line, response_for))
        body = line.get("body") or {}
        prompts = body.get("prompt") if isinstance(body.get("prompt"), list) else [body.get("prompt", "")]
        state.record({"t": time.time(), "path": "batch", "prompt": str(prompts[0]), "prompts": [str(p) for p in prompts],
                      "n": int(body.get("n") or 1), "temperature": body.get("temperature"), "fault": None,
                      "batch_id": batch_id})  # fmt: skip
    batches.lines_served += len(outputs) + len(errors)
    counts = {"total": batch["request_counts"]["total"], "completed": len(outputs), "failed": len(errors)}
    if outputs:
        name = f"{batch_id}_output.jsonl"
        batch["output_file_id"] = _store_file(batches, name, "".join(json.dumps(o) + "\n" for o in outputs).encode(), "batch_output")["id"]
    if errors:
        name = f"{batch_id}_error.jsonl"
        batch["error_file_id"] = _store_file(batches, name, "".join(json.dumps(e) + "\n" for e in errors).encode(), "batch_output")["id"]
    finished = int(time.time())
    batch.update(request_counts=counts, status="expired" if expire else "completed",
                 **({"expired_at": finished} if expire else {"completed_at": finished}))  # fmt: skip


def _throttled(request: web.Request) -> web.Response | None:
    """The first batch_api_429s calls of each route (upload, create) get a 429 with Retry-After."""
    state = request.app[STATE]
    sent = state.batches.throttled.get(request.path, 0)
    if sent < state.settings.batch_api_429s:
        state.batches.throttled[request.path] = sent + 1
        ms = state.settings.retry_after_ms
        return error_response(429, "simulated rate limit", {"Retry-After": str(math.ceil(ms / 1000)), "retry-after-ms": str(ms)})
    return None


async def _upload(request: web.Request) -> web.Response:
    if (refusal := _throttled(request)) is not None:
        return refusal
    form = await request.post()
    upload = form.get("file")
    if upload is None or not hasattr(upload, "file"):
        return error_response(400, "file: required")
    stored = _store_file(request.app[STATE].batches, upload.filename or "upload.jsonl", upload.file.read(), str(form.get("purpose", "")))
    return web.json_response(_public(stored))


async def _file_info(request: web.Request) -> web.Response:
    stored = request.app[STATE].batches.files.get(request.match_info["file_id"])
    return web.json_response(_public(stored)) if stored else error_response(404, "no such file")


async def _file_content(request: web.Request) -> web.Response:
    stored = request.app[STATE].batches.files.get(request.match_info["file_id"])
    return web.Response(body=stored["content"], content_type="application/octet-stream") if stored else error_response(404, "no such file")


async def _create(request: web.Request, response_for) -> web.Response:
    if (refusal := _throttled(request)) is not None:
        return refusal
    payload = await request.json()
    batches = request.app[STATE].batches
    source = batches.files.get(payload.get("input_file_id", ""))
    if source is None:
        return error_response(400, "input_file_id: no such file")
    total = sum(1 for raw in source["content"].decode().splitlines() if raw.strip())
    batches.batches_created += 1
    batch_id = f"batch_{uuid.uuid4().hex[:16]}"
    batches.batches[batch_id] = {
        "id": batch_id, "object": "batch", "endpoint": payload.get("endpoint"), "input_file_id": source["id"],
        "completion_window": payload.get("completion_window", "24h"), "status": "validating", "created_at": int(time.time()),
        "output_file_id": None, "error_file_id": None, "request_counts": {"total": total, "completed": 0, "failed": 0},
        "metadata": payload.get("metadata"), "errors": None, "_order": batches.batches_created,
    }  # fmt: skip
    asyncio.get_running_loop().create_task(_run_batch(request.app, batch_id, response_for))
    return web.json_response(_batch_view(batches.batches[batch_id]))


async def _retrieve(request: web.Request) -> web.Response:
    batch = request.app[STATE].batches.batches.get(request.match_info["batch_id"])
    return web.json_response(_batch_view(batch)) if batch else error_response(404, "no such batch")


async def _listing(request: web.Request) -> web.Response:
    ordered = sorted(request.app[STATE].batches.batches.values(), key=lambda b: -b["_order"])
    data = [_batch_view(b) for b in ordered]
    return web.json_response({"object": "list", "data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})  # fmt: skip


async def _cancel(request: web.Request) -> web.Response:
    batch = request.app[STATE].batches.batches.get(request.match_info["batch_id"])
    if batch is None:
        return error_response(404, "no such batch")
    if batch["status"] not in TERMINAL:
        batch["status"] = "cancelling"
    return web.json_response(_batch_view(batch))


def add_batch_routes(app: web.Application, response_for) -> None:
    """response_for(body, url) -> the JSON body an online request with that body gets."""

    async def create(request: web.Request) -> web.Response:
        return await _create(request, response_for)

    app.router.add_post("/v1/files", _upload)
    app.router.add_get("/v1/files/{file_id}", _file_info)
    app.router.add_get("/v1/files/{file_id}/content", _file_content)
    app.router.add_post("/v1/batches", create)
    app.router.add_get("/v1/batches", _listing)
    app.router.add_get("/v1/batches/{batch_id}", _retrieve)
    app.router.add_post("/v1/batches/{batch_id}/cancel", _cancel)


def _batch_view(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if not key.startswith("_")}
