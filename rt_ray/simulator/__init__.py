"""The teacher simulator and a helper that runs it as a local process.

    with SimulatorProcess(port=8765, latency_s=0.05) as sim:
        sim.base_url       # "http://127.0.0.1:8765/v1"
        sim.requests()     # what it served, for tests
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class SimulatorProcess:
    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        latency_s: float = 0.05,
        latency_jitter_s: float = 0.0,
        wrong_rate: float = 0.2,
        fault_rate: float = 0.0,
        fault_kinds: list[str] | None = None,
        hang_s: float | None = None,
        api_key_env: str | None = None,
        seed: int = 0,
        log_file: Path | None = None,
        batch: dict | None = None,  # batch_delay_s, batch_fail_rate, batch_expire_first, batch_api_429s
        answer_key: tuple[list[str], str, dict[str, str]] | None = None,  # (files, answer type, fields) of a custom task
    ):
        self.host, self.port = host, port or free_port()
        self.args = [
            "--host", host, "--port", str(self.port), "--latency-s", str(latency_s),
            "--latency-jitter-s", str(latency_jitter_s), "--wrong-rate", str(wrong_rate),
            "--fault-rate", str(fault_rate), "--seed", str(seed),
        ]  # fmt: skip
        if fault_kinds:
            self.args += ["--fault-kinds", ",".join(fault_kinds)]
        if hang_s is not None:
            self.args += ["--hang-s", str(hang_s)]
        if api_key_env:
            self.args += ["--api-key-env", api_key_env]
        if log_file:
            self.args += ["--log-file", str(log_file)]
        for name, value in (batch or {}).items():
            self.args += [f"--{name.replace('_', '-')}", str(value)]
        if answer_key:
            files, answer_type, fields = answer_key
            self.args += [arg for path in files for arg in ("--answer-key", str(path))] + ["--answer-type", answer_type]
            self.args += [arg for name, column in fields.items() for arg in ("--field", f"{name}={column}")]
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> "SimulatorProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rt_ray.cli", "teacher-sim", *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while not is_listening(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"teacher simulator exited: {self.process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"teacher simulator did not listen on port {self.port} within {timeout_s}s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def _get(self, path: str):
        with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict]:
        return self._get("/sim/requests")

    def stats(self) -> dict:
        return self._get("/sim/stats")

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
