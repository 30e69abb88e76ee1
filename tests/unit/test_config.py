from pathlib import Path

import pytest

from rt_ray.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_says_how_to_run_it(path):
    load_config(path)
    assert path.read_text().startswith("#"), "configs start with a comment giving the command that runs them"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"teacher\.max_concurency: unknown key"):
        parse_config({"teacher": {"max_concurency": 4}})


def test_wrong_type_names_the_key_and_the_value():
    with pytest.raises(ConfigError, match=r"generation\.degree: .*integer.*'four'"):
        parse_config({"generation": {"degree": "four"}})


def test_set_overrides_nested_values_with_yaml_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# test\ngeneration:\n  degree: 2\n")
    cfg = load_config(path, ["generation.degree=8", "teacher.rpm=600", "sweep.degrees=[1, 2]"])
    assert (cfg.generation.degree, cfg.teacher.rpm, cfg.sweep.degrees) == (8, 600, [1, 2])


def test_set_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["generation.degree"])


def test_budget_needs_a_price_for_the_model():
    with pytest.raises(ConfigError, match="teacher.prices has no entry for model 'mystery'"):
        parse_config({"teacher": {"model": "mystery", "max_cost_usd": 1.0}})


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_flat_params_hold_the_key_name_not_a_key_value():
    flat = parse_config({}).flat()
    assert flat["teacher.api_key_env"] == "OPENAI_API_KEY"
    assert all(k.endswith("api_key_env") for k in flat if "api_key" in k), "only the names of key variables"


@pytest.mark.parametrize("path", sorted((REPO / "serve_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_serve_config_passes_ray_serves_schema_and_names_a_loadable_rt_ray_config(path):
    import yaml
    from ray.serve.schema import ServeDeploySchema

    assert path.read_text().startswith("#")
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for application in schema.applications:
        assert application.import_path == "rt_ray.serve.app:build_app"
        load_config(REPO / application.args["config"], application.args.get("overrides", []))


def test_relative_paths_resolve_for_workers_that_run_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_config({"generation": {"output_dir": "runs/x"}}).with_absolute_paths()
    assert cfg.generation.output_dir == tmp_path / "runs" / "x"
    assert cfg.teacher.cache_dir.is_absolute() and cfg.task.bigbench_dir.is_absolute()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    expected = "sqlite:///" + str(tmp_path / "mlflow.db")
    assert parse_config({}).with_absolute_paths().tracking.tracking_uri == expected


def test_with_values_changes_only_the_named_keys_and_validates_them():
    cfg = parse_config({"train": {"lr": 0.01, "max_steps": 7}})
    changed = cfg.with_values(train={"seed": 3})
    assert (changed.train.seed, changed.train.lr, changed.train.max_steps) == (3, 0.01, 7) and cfg.train.seed == 0
    with pytest.raises(ConfigError, match="train.max_steps"):
        cfg.with_values(train={"max_steps": 0})


def test_an_empty_config_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# only a comment\n")
    with pytest.raises(ConfigError, match=f"config file {path} is empty"):
        load_config(path)


def test_a_ray_job_without_a_tracking_uri_is_refused_with_how_to_set_one(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(ConfigError, match="Ray job has no MLflow tracking URI.*MLFLOW_TRACKING_URI"):
        parse_config({}).with_absolute_paths()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert parse_config({}).with_absolute_paths().tracking.tracking_uri == "http://mlflow:5000"


def test_fingerprint_of_follows_inputs_not_where_or_how_fast_the_work_runs():
    base = parse_config({})
    fingerprint = base.fingerprint_of("task", "train")
    assert base.with_values(train={"output_dir": "elsewhere", "checkpoint_every_steps": 7}).fingerprint_of("task", "train") == fingerprint
    assert base.with_values(train={"lr": 0.5}).fingerprint_of("task", "train") != fingerprint
    assert base.with_values(student={"tiny_layers": 9}).fingerprint_of("task", "train") == fingerprint
    assert base.fingerprint_of("task", "train", upstream="other teacher") != fingerprint
