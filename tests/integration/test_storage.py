"""Output locations on a local S3 server (moto's standalone server over HTTP): upload and download."""

from __future__ import annotations

import time

import pytest

from rt_ray.storage import fetched, join, local_dir, publish, remote_files

pytestmark = pytest.mark.integration


def test_a_folder_published_again_at_the_same_sizes_is_fetched_again(s3_bucket, tmp_path):
    location = join(s3_bucket, f"storage-{tmp_path.name}")
    staged = local_dir(location) / "model"
    staged.mkdir(parents=True)
    (staged / "weights.bin").write_text("first")
    (staged / "stale.txt").write_text("only in the first version")
    publish(location, "model")
    first = fetched(join(location, "model"))
    assert (first / "weights.bin").read_text() == "first" and fetched(join(location, "model")) == first

    time.sleep(1.1)  # S3 keeps modification times to the second
    (staged / "weights.bin").write_text("again")  # a retrained model: the same names and sizes, other bytes
    publish(location, "model")
    second = fetched(join(location, "model"))
    assert second != first and (second / "weights.bin").read_text() == "again"

    (staged / "stale.txt").unlink()
    publish(location, "model")
    assert set(remote_files(str(join(location, "model")))) == {"weights.bin"}, "the folder replaced the old one"
