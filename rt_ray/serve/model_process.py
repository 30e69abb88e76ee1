"""The served student's model in a process of its own, beside the replica that speaks HTTP.

    model = ModelProcess(source, tracking_uri, threads=1, max_batch_size=16, wait_s=0.02)  # returns when loaded
    output = await model.generate(prompt, max_new_tokens, temperature, top_p)   # a Generated; batched there
    async for piece in model.stream(prompt, max_new_tokens, temperature, top_p): ...
    model.tokenizer, model.arch, model.meta, model.context       # what the replica needs to check requests
    model.device                                                 # where the model computes ("cpu", "cuda:0")

Why a process: a replica's request handling (Serve's proxy protocol, FastAPI, pydantic, access logs)
and a small student's ``generate()`` loop are both Python and would share one GIL. Measured on this
machine (tiny student, 32 clients, batches of 16, one process): generation held the GIL about half of
the time, and each batch took about twice as long as the same ``generate()`` alone. The batching is
decided in the model process too (serve/batching.py), so the model goes from one batch to the next
without waiting for the replica's event loop; vLLM's V1 engine core runs its scheduler and model in a
process of its own for the same reasons. The child is started with ``subprocess`` over a socket pair
rather than ``multiprocessing``'s spawn, which would re-import the Ray worker's ``__main__``; the load
settings (the tracking URI may hold credentials) travel over the socket, never on a command line.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from rt_ray.serve.batching import Pending, batch_deadline, fill_more, take_batch
from rt_ray.student.generation import Generated, context_length, encode_prompt, generate_texts, new_token_room, sampling_kwargs


class ModelProcessError(RuntimeError):
    """The model process failed to load, died, or raised while generating."""


def load_served_student(source: str, tracking_uri: str | None):
    """(model, tokenizer, arch, meta) from a student folder, an MLflow model URI or a hub name; meta is
    the student's rt-ray metadata (format, default_max_tokens, ...), empty for a hub model."""
    from transformers import AutoConfig, AutoTokenizer

    from rt_ray.artifacts import META_FILE, auto_model_class, load_student
    from rt_ray.storage import is_remote

    meta: dict = {}
    if source.startswith(("models:/", "runs:/")):
        from rt_ray.tracking import load_logged_student

        model, tokenizer, meta = load_logged_student(source, tracking_uri)
    elif is_remote(source) or (Path(source) / META_FILE).is_file():  # a student folder, here or at a URI
        model, tokenizer, meta = load_student(source)
    else:
        encoder_decoder = AutoConfig.from_pretrained(source).is_encoder_decoder
        model = auto_model_class("encoder-decoder" if encoder_decoder else "decoder").from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer, "encoder-decoder" if model.config.is_encoder_decoder else "decoder", meta


class ModelProcess:
    def __init__(self, source: str, tracking_uri: str | None, threads: int = 1, max_batch_size: int = 16,
                 wait_s: float = 0.02, device: str = "cpu"):  # fmt: skip
        here, there = socket.socketpair()
        self._process = subprocess.Popen([sys.executable, "-m", "rt_ray.serve.model_process", str(there.fileno())],
                                         pass_fds=(there.fileno(),))  # fmt: skip
        there.close()
        self._conn = Connection(here.detach())
        self._conn.send({"source": source, "tracking_uri": tracking_uri, "threads": threads,
                         "max_batch_size": max_batch_size, "wait_s": wait_s, "device": device})  # fmt: skip
        try:
            kind, _, info = self._conn.recv()
        except (EOFError, OSError):
            raise ModelProcessError(f"the model process exited while loading {source} (exit code {self._process.wait()})") from None
        if kind == "failed":
            raise ModelProcessError(f"the model process could not load {source}: {info}")
        self.tokenizer, self.arch, self.meta, self.context = info["tokenizer"], info["arch"], info["meta"], info["context"]
        self.device = info["device"]
        self._send_lock = threading.Lock()
        self._deliver: dict[int, Callable[[str, Any], None]] = {}  # request id -> where its replies go
        self._ids = itertools.count()
        self._dead: str | None = None
        threading.Thread(target=self._read_replies, name="rt-ray-model-replies", daemon=True).start()

    def alive(self) -> bool:
        return self._dead is None and self._process.poll() is None

    async def generate(self, prompt: str, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0) -> Generated:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future = loop.create_future()

        def settle(kind: str, value: Any) -> None:
            if not reply.done():
                reply.set_exception(ModelProcessError(value)) if kind == "error" else reply.set_result(value)

        request_id = self._ask("generate", (prompt, max_new_tokens, temperature, top_p), loop, settle)
        try:
            return await reply
        finally:
            self._deliver.pop(request_id, None)

    async def stream(self, prompt: str, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0) -> AsyncIterator[str]:
        """The new text piece by piece as the model writes it; leaving the loop early drops the rest."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        request_id = self._ask("stream", (prompt, max_new_tokens, temperature, top_p), loop,
                               lambda kind, value: pieces.put_nowait((kind, value)))  # fmt: skip
        try:
            while True:
                kind, value = await pieces.get()
                if kind == "error":
                    raise ModelProcessError(value)
                if kind == "end":
                    return
                yield value
        finally:
            self._deliver.pop(request_id, None)

    def close(self) -> None:
        self._conn.close()  # the child reads EOF and exits
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def _ask(self, kind: str, args: tuple, loop: asyncio.AbstractEventLoop, deliver: Callable[[str, Any], None]) -> int:
        if not self.alive():
            raise ModelProcessError(f"the model process is gone ({self._dead or 'exited'})")
        request_id = next(self._ids)
        self._deliver[request_id] = lambda kind, value: loop.call_soon_threadsafe(deliver, kind, value)
        try:
            with self._send_lock:
                self._conn.send((kind, request_id, args))
        except OSError as error:
            self._deliver.pop(request_id, None)
            raise ModelProcessError(f"the model process is gone ({error})") from None
        if self._dead is not None:  # it died between the check and the send: the reader has given up
            deliver("error", f"the model process {self._dead}")
        return request_id

    def _read_replies(self) -> None:
        while True:
            try:
                kind, request_id, value = self._conn.recv()
            except (EOFError, OSError):
                self._dead = f"exited with code {self._process.wait()}"
                for deliver in list(self._deliver.values()):
                    deliver("error", f"the model process {self._dead}")
                return
            deliver = self._deliver.get(request_id)
            if deliver is not None:  # else a request whose caller left (a stream cut at a stop sequence)
                deliver(kind, value)


def _serve_requests(conn: Connection) -> None:
    """The child: load the model, say what the replica needs, then run batches until the replica goes."""
    settings = conn.recv()
    try:
        import torch

        torch.set_num_threads(settings["threads"])
        model, tokenizer, arch, meta = load_served_student(settings["source"], settings["tracking_uri"])
        model.to(settings["device"])  # rt_ray.devices.replica_device: what Ray gave the replica, not what it sees
    except Exception as error:  # the replica reports it; the traceback goes to this process's log
        import traceback

        traceback.print_exc()
        conn.send(("failed", None, f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", None, {"tokenizer": tokenizer, "arch": arch, "meta": meta, "context": context_length(model),
                               "device": str(model.device)}))  # fmt: skip
    queue: collections.deque[Pending] = collections.deque()
    while _receive(conn, queue, None):
        while _receive(conn, queue, 0):  # everything that arrived while the last batch ran
            pass
        while fill_more(queue, settings["max_batch_size"]):
            left = batch_deadline(queue, settings["wait_s"]) - time.monotonic()
            if left <= 0 or not _receive(conn, queue, left):
                break
        while queue:
            _run(conn, take_batch(queue, settings["max_batch_size"]), model, tokenizer, arch)
            if conn.poll(0):  # newcomers join the batching decision for what is left
                break


def _receive(conn: Connection, queue: collections.deque[Pending], timeout: float | None) -> bool:
    """One request into the queue if one comes within timeout (None: wait for it); False when none
    came, and on EOF (the replica is gone) after which the caller stops."""
    if timeout is not None and not conn.poll(timeout):
        return False
    try:
        kind, request_id, args = conn.recv()
    except (EOFError, OSError):
        raise SystemExit(0) from None
    queue.append(Pending(kind, request_id, args, time.monotonic()))
    return True


def _run(conn: Connection, batch: list[Pending], model, tokenizer, arch: str) -> None:
    try:
        if batch[0].kind == "stream":
            _stream(conn, batch[0], model, tokenizer, arch)
            conn.send(("end", batch[0].id, None))
            return
        prompts, limits = [p.args[0] for p in batch], [p.args[1] for p in batch]
        temperature, top_p = batch[0].sampling
        for pending, output in zip(batch, generate_texts(model, tokenizer, arch, prompts, limits, temperature, top_p)):
            conn.send(("result", pending.id, output))
    except Exception as error:  # noqa: BLE001 - any failure of one batch: its callers get it, the log its traceback, the model serves on
        import traceback

        traceback.print_exc()
        for pending in batch:
            conn.send(("error", pending.id, f"{type(error).__name__}: {error}"))


def _stream(conn: Connection, pending: Pending, model, tokenizer, arch: str) -> None:
    import torch
    from transformers import TextStreamer

    prompt, max_new_tokens, temperature, top_p = pending.args

    class PipeStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                conn.send(("piece", pending.id, text))

    ids = encode_prompt(tokenizer, prompt, arch)
    streamer = PipeStreamer(tokenizer, skip_prompt=arch == "decoder", skip_special_tokens=True)
    with torch.no_grad():
        model.generate(input_ids=torch.tensor([ids], device=model.device), streamer=streamer,
                       max_new_tokens=new_token_room(context_length(model), arch, len(ids), max_new_tokens),
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       **sampling_kwargs(temperature, top_p))  # fmt: skip


if __name__ == "__main__":
    try:
        _serve_requests(Connection(int(sys.argv[1])))
    except SystemExit:
        pass
    os._exit(0)  # no interpreter teardown of torch's threads
