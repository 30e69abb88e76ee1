"""cluster.yaml passes Ray's own cluster-launcher validation (the schema `ray up` applies)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_validator(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_the_validator_is_real_a_misspelt_key_is_rejected(cluster):
    cluster["available_node_types"]["gpu_worker"]["max_wokers"] = 2
    with pytest.raises(ValidationError, match="max_wokers"):
        validate_config(prepare_config(cluster))


def test_a_cpu_head_and_an_autoscaling_gpu_group_that_install_rt_ray(cluster):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    gpu = cluster["available_node_types"]["gpu_worker"]
    assert head["node_config"]["InstanceType"].startswith(("m5", "m6", "c5", "c6", "r5"))
    assert gpu["node_config"]["InstanceType"].startswith(("g5", "g6", "p3", "p4", "p5"))
    assert gpu["min_workers"] == 0 < gpu["max_workers"] <= cluster["max_workers"]
    assert any("rt-ray" in command for command in cluster["setup_commands"])
    assert "~/rt-ray" in cluster["file_mounts"]


def test_keys_reach_nodes_from_a_mounted_env_file_never_from_the_config_itself(cluster):
    settings = [line for line in CLUSTER_YAML.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in settings if "API_KEY" in line or "sk-" in line]
    assert cluster["file_mounts"]["~/.rt_ray_env"] == "~/.rt_ray_env"
    assert all(". ~/.rt_ray_env" in " ".join(cluster[key]) for key in ("head_start_ray_commands", "worker_start_ray_commands"))
