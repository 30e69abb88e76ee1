import json

from rt_ray.config import RtRayConfig, SweepConfig, apply_override, parse_config
from rt_ray.sweep.space import other_knobs, plot_accuracy_vs_degree, results_rows, search_space, trial_overrides


def test_search_space_holds_d_and_only_the_knobs_given():
    space = search_space(SweepConfig(degrees=[4, 1, 2, 4], lrs=[1e-3, 3e-4]))
    assert space == {"degree": [1, 2, 4], "lr": [1e-3, 3e-4]}
    assert other_knobs(space) == ["lr"]
    assert other_knobs(search_space(SweepConfig(degrees=[1, 2], max_steps=[600]))) == []


def test_trial_overrides_map_knobs_to_config_keys():
    assert trial_overrides({"degree": 4, "lr": 0.001, "student_model": "gpt2", "train_size": 100}) == [
        "train.lr=0.001",
        "student.model=gpt2",
    ]


def test_a_lora_rank_knob_turns_lora_on_in_a_config_without_it():
    assert search_space(SweepConfig(degrees=[1], lora_ranks=[4, 16]))["lora_rank"] == [4, 16]
    tree = json.loads(RtRayConfig().model_dump_json())
    assert tree["student"]["lora"] is None
    for assignment in trial_overrides({"degree": 1, "lora_rank": 4}):
        apply_override(tree, assignment)
    lora = parse_config(tree).student.lora
    assert lora is not None and lora.r == 4 and lora.export == "merged"


def test_results_are_ranked_best_first():
    trials = [{"validation_accuracy": 0.5}, {"validation_accuracy": 0.9}, {"validation_accuracy": 0.7}]
    assert [t["validation_accuracy"] for t in results_rows(trials, "validation_accuracy")] == [0.9, 0.7, 0.5]


def test_plot_is_a_png_with_one_line_per_knob_value(tmp_path):
    trials = [
        {"params": {"degree": d, "lr": lr}, "validation_accuracy": a}
        for d, lr, a in [(1, 0.1, 0.5), (2, 0.1, 0.6), (1, 0.2, 0.4), (2, 0.2, 0.7)]
    ]
    path = plot_accuracy_vs_degree(trials, ["lr"], "validation_accuracy", tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_trial_labels_name_the_knobs_the_same_way_every_run():
    from rt_ray.sweep.space import trial_count, trial_label

    assert trial_label({"degree": 4}) == "D4"
    assert trial_label({"lr": 0.001, "degree": 2, "student_model": "org/model"}) == "D2-lr0.001-student_modelorg_model"
    assert trial_count({"degree": [1, 2, 4], "lr": [1e-3, 2e-3]}, "grid", 2) == 12
    assert trial_count({"degree": [1, 2, 4]}, "random", 5) == 5


def test_named_students_are_one_knob_and_a_trial_gets_its_students_section():
    from rt_ray.axes import with_student
    from rt_ray.sweep.space import trial_label

    sweep = SweepConfig(degrees=[1], students={"small": {"student.tiny_hidden": 32, "student.tiny_layers": 1}, "big": {}})
    assert search_space(sweep)["student"] == ["small", "big"]
    knobs = {"degree": 1, "student": "small"}
    assert trial_overrides(knobs) == [] and trial_label(knobs) == "D1-studentsmall"
    tree = json.loads(RtRayConfig(sweep=sweep).model_dump_json())
    student = parse_config(with_student(tree, tree["sweep"]["students"], knobs["student"], origin="sweep")).student
    assert (student.tiny_hidden, student.tiny_layers) == (32, 1)
