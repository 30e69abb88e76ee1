"""One writer per output folder: a live holder keeps others out, a dead one's lock is taken over."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rt_ray.locks import LOCK_FILE, STALE_S, OutputFolderBusy, acquire, output_lock


def write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "since": "earlier", "command": "rt-ray generate", **holder}))
    return folder / LOCK_FILE


def test_a_live_run_keeps_a_second_out_with_one_line_naming_it(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import psutil

        write_lock(tmp_path, pid=other.pid, started=psutil.Process(other.pid).create_time())
        with pytest.raises(OutputFolderBusy) as raised:
            acquire(tmp_path, "generation.output_dir")
    finally:
        other.kill()
        other.wait()
    message = str(raised.value)
    assert "\n" not in message and f"generation.output_dir {tmp_path} is being written by another run (pid {other.pid} on" in message


def test_a_dead_runs_lock_is_taken_over_and_released_at_the_end(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(tmp_path, pid=gone.pid, started=time.time() - 5)
    with output_lock(tmp_path, "train.output_dir"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_reused_pid_is_not_the_run_that_wrote_the_lock(tmp_path):
    write_lock(tmp_path, pid=os.getppid(), started=1.0)  # a live process, started long after the lock's holder
    with output_lock(tmp_path, "sweep.output_dir"):
        pass


def test_another_hosts_lock_holds_while_it_is_touched_and_is_taken_over_once_stale(tmp_path):
    path = write_lock(tmp_path, host="node-7", pid=4242, started=1.0)
    with pytest.raises(OutputFolderBusy, match="pid 4242 on node-7"):
        acquire(tmp_path, "experiment.output_dir")
    os.utime(path, (time.time() - STALE_S - 1, time.time() - STALE_S - 1))
    assert acquire(tmp_path, "experiment.output_dir") is True


def test_the_run_that_holds_a_lock_may_enter_it_again_and_keeps_it(tmp_path):
    with output_lock(tmp_path, "train.output_dir"):
        with output_lock(tmp_path, "train.output_dir"):
            pass
        assert (tmp_path / LOCK_FILE).exists(), "the inner block does not release the outer one's lock"
