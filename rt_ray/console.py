"""The user's console, and where everyone else's output goes.

    with quiet_output(Path("runs/quickstart/logs/pipeline.log")):
        status().print("teacher stage")   # the terminal's stderr: headers, progress, one-line errors
        report().print(table)             # the terminal's stdout: tables and reports

By default a command's file descriptors 1 and 2 point at its log file, so whatever Ray (driver, its
log monitor relaying worker output, Tune's status table), DeepSpeed, transformers or a C++ library
writes lands there, while rt-ray keeps copies of the terminal's descriptors for its own lines. This
is redirection at the descriptor level, not text filtering: nothing is dropped, it just has one place.
``-v`` leaves the descriptors alone and everything reaches the terminal as before.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from rich.console import Console

def _terminal_status() -> Console:
    # Not a terminal (a job's log, a pipe): no screen to fit, so lines are not cut at rich's default 80 columns.
    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@dataclass
class CommandSession:
    """What one command keeps for its user: the consoles, the log file its output went to, what it
    finished (for the line an interrupted command ends with), its progress display, and the tags its
    MLflow runs carry. ``command_session()`` makes one per command; outside a command a process has one
    of its own (a library caller, a test)."""

    status: Console = field(default_factory=_terminal_status)
    report_stream: IO[str] | None = None  # None: sys.stdout as it is
    log_path: Path | None = None
    kept: list[str] = field(default_factory=list)
    run_tags: dict[str, str] = field(default_factory=dict)
    # The progress display: rich allows one live display at a time, so every bar of the command shares it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    progress: Any = None
    open_bars: int = 0


# The command running now. One reference, swapped by command_session() (not a ContextVar: the progress
# thread and Ray Train's fit thread must see the command that started them, and a new thread's context
# starts empty).
_current = CommandSession()


def current() -> CommandSession:
    return _current


@contextmanager
def command_session(run_tags: dict[str, str] | None = None) -> Iterator[CommandSession]:
    """A fresh session for one command (one process may run several, as tests do), the previous one after."""
    global _current
    previous, _current = _current, CommandSession(run_tags=dict(run_tags or {}))
    try:
        yield _current
    finally:
        _current = previous


def status() -> Console:
    """rt-ray's own lines: stage headers, progress, one-line errors (the terminal's stderr)."""
    return _current.status


def report(width: int = 120) -> Console:
    """Tables and reports (the terminal's stdout)."""
    return Console(file=_current.report_stream or sys.stdout, width=width)


def log_path() -> Path | None:
    """The log file of this command, where Ray's and the libraries' output went (None with -v)."""
    return _current.log_path


def note_kept(what: str) -> None:
    """Record something finished and saved, for the line an interrupted command ends with."""
    _current.kept.append(what)


def kept() -> list[str]:
    return list(_current.kept)


@contextmanager
def quiet_output(path: Path) -> Iterator[Path]:
    """Point descriptors 1 and 2 (and so every library and child process) at ``path``; rt-ray's
    status and report consoles keep writing to the terminal."""
    session = _current
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal_out = os.fdopen(saved_out, "w", buffering=1, closefd=False)
    terminal_err = os.fdopen(saved_err, "w", buffering=1, closefd=False)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    previous_file = session.status.file
    session.status.file, session.report_stream, session.log_path = terminal_err, terminal_out, path
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        terminal_out.flush()
        terminal_err.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        session.status.file, session.report_stream, session.log_path = previous_file, None, None
