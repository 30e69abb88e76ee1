"""Output locations: local folders and object-store URIs (the S3 round trip is in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt_ray.config import ConfigError, parse_config
from rt_ray.storage import fetched, is_remote, join, local_dir, publish, ray_storage_path


@pytest.mark.parametrize("location, remote", [("s3://bucket/run", True), ("gs://bucket", True), ("runs/x", False),
                                              ("/abs/x", False), ("file:///abs/x", False), (Path("runs/x"), False)])  # fmt: skip
def test_only_a_uri_with_a_scheme_other_than_file_is_remote(location, remote):
    assert is_remote(location) is remote


def test_a_uri_joins_with_slashes_and_a_path_stays_a_path():
    assert join("s3://bucket/run/", "trials", "d1") == "s3://bucket/run/trials/d1"
    assert join(Path("runs/x"), "model") == Path("runs/x/model")


def test_a_uri_is_staged_under_the_staging_dir_by_bucket_and_prefix_and_a_local_folder_is_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("RT_RAY_STAGING_DIR", str(tmp_path))
    assert local_dir("s3://bucket/team/run") == tmp_path / "staged" / "s3" / "bucket" / "team" / "run"
    assert local_dir("runs/x") == Path("runs/x")
    assert fetched("runs/x") == Path("runs/x")
    publish(tmp_path / "nothing-to-upload", "model")  # local: nothing to do, nothing raised


def test_ray_storage_path_is_the_uri_below_the_output_or_an_absolute_local_path():
    assert ray_storage_path("s3://bucket/run", "ray_train") == "s3://bucket/run/ray_train"
    assert ray_storage_path("runs/x", "tune") == str((Path("runs/x") / "tune").resolve())


def test_output_dirs_keep_uris_and_resolve_local_paths():
    cfg = parse_config({"train": {"output_dir": "s3://bucket/student"}, "sweep": {"output_dir": "runs/sweep"},
                        "experiment": {"output_dir": "gs://bucket/exp"}}).with_absolute_paths(Path("/work"))  # fmt: skip
    assert cfg.train.output_dir == "s3://bucket/student" and cfg.experiment.output_dir == "gs://bucket/exp"
    assert cfg.sweep.output_dir == Path("/work/runs/sweep")
    assert cfg.flat()["train.output_dir"] == "s3://bucket/student"


def test_a_uri_where_only_a_local_folder_works_is_refused_with_the_key():
    with pytest.raises(ConfigError, match="generation.output_dir"):
        parse_config({"generation": {"output_dir": "s3://bucket/teacher"}})
