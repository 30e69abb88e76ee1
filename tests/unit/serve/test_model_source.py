"""Which model `rt-ray serve` serves when the config names none, and the one line when it cannot."""

import pytest

from rt_ray.config import ConfigError, parse_config
from rt_ray.serve.app import looks_local, served_model_source


def config(tmp_path, **serve):
    return parse_config({"train": {"output_dir": str(tmp_path / "student")}, "serve": serve,
                         "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'absent.db'}"}})  # fmt: skip


def test_a_model_folder_that_does_not_exist_is_one_line_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=f"serve.model: no model folder at {tmp_path / 'nope'}"):
        served_model_source(config(tmp_path, model=str(tmp_path / "nope")))


def test_hub_names_and_mlflow_uris_are_not_taken_for_folders():
    assert not looks_local("gpt2") and not looks_local("Qwen/Qwen2.5-0.5B") and not looks_local("models:/s@champion")
    assert looks_local("./model") and looks_local("/abs/model") and looks_local("runs/x/student/model")


def test_without_serve_model_the_train_stages_folder_is_served_and_nothing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing to serve: no champion of 'rt-ray-student'"):
        served_model_source(config(tmp_path))
    (tmp_path / "student" / "model").mkdir(parents=True)
    assert served_model_source(config(tmp_path)) == str((tmp_path / "student" / "model").resolve())
    assert not (tmp_path / "absent.db").exists(), "asking the registry did not create a store"
