"""The CLI's own behaviour: config errors, the log file, Ctrl-C's one line and exit code."""

import signal
import subprocess
import sys
import textwrap

import pytest
import typer
import yaml
from typer.testing import CliRunner

from rt_ray import cli
from rt_ray.console import note_kept


def test_an_empty_config_exits_2_naming_the_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    result = CliRunner().invoke(cli.app, ["show-config", "-c", str(path)])
    assert result.exit_code == 2
    assert f"config file {path} is empty" in " ".join(result.output.split())


def test_quiet_output_sends_every_other_writer_to_the_log_and_keeps_rt_rays_lines_on_the_terminal(tmp_path):
    log = tmp_path / "run.log"
    program = textwrap.dedent(f"""
        import os, subprocess, sys, warnings
        from pathlib import Path
        from rt_ray.console import quiet_output, report, status
        with quiet_output(Path({str(log)!r})):
            print("a library's print")
            warnings.warn("a library's warning")
            os.write(2, b"a C library's stderr\\n")
            subprocess.run([sys.executable, "-c", "print('a child process')"])
            status().print("rt-ray status line")
            report().print("rt-ray report line")
        print("after: the terminal again")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "rt-ray status line"
    assert done.stdout.splitlines() == ["rt-ray report line", "after: the terminal again"]
    logged = log.read_text()
    for line in ("a library's print", "a library's warning", "a C library's stderr", "a child process"):
        assert line in logged


@pytest.fixture
def restore_sigint():
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_a_stage_exits_130_with_what_was_kept_and_the_resume_command(tmp_path, capfd, monkeypatch, restore_sigint):
    from mlflow.tracking import MlflowClient

    from rt_ray import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"log_dir": str(tmp_path / "logs"), "tracking": {"tracking_uri": uri, "experiment": "cli"}}))
    monkeypatch.setattr(sys, "argv", ["rt-ray", "pipeline", "-c", str(config), "--force"])

    note_kept("something an earlier command in this process kept")

    def stage(cfg):
        with tracking.tracked_run(cfg, stage="generate"):
            note_kept("teacher set (somewhere)")
            raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as exit_info:
        cli._run_stage("pipeline", config, None, False, stage)
    assert exit_info.value.exit_code == cli.EXIT_INTERRUPTED
    err = " ".join(capfd.readouterr().err.split())
    assert "interrupted: kept teacher set (somewhere);" in err, "only what this command kept"
    assert f"resume with: rt-ray pipeline -c {config}" in err and "--force" not in err
    assert "Traceback" not in err
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.info.status == "KILLED"
    assert list((tmp_path / "logs").glob("pipeline-*.log")), "the log file is where the command said"


def test_on_a_terminal_the_progress_display_leaves_other_writers_in_the_log(tmp_path):
    """rich's live display redirects sys.stdout/sys.stderr through itself on a terminal by default;
    under rt-ray those writes must still land in the log file."""
    import os
    import pty

    log = tmp_path / "run.log"
    program = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rt_ray.console import quiet_output
        from rt_ray.progress import bar
        with quiet_output(Path({str(log)!r})):
            with bar("training", total=2) as task:
                print("(RayTrainWorker pid=1) a worker line", file=sys.stderr, flush=True)
                task.advance(2)
    """)
    primary, secondary = pty.openpty()
    done = subprocess.run([sys.executable, "-c", program], stdin=secondary, stdout=secondary, stderr=secondary, timeout=60)
    os.close(secondary)
    terminal = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(primary)
    assert done.returncode == 0, terminal.decode(errors="replace")
    assert b"training" in terminal and b"a worker line" not in terminal
    assert "a worker line" in log.read_text()
