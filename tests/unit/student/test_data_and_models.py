import pytest
import torch

from rt_ray.config import StudentConfig, TrainConfig
from rt_ray.student.data import IGNORE_INDEX, pad_batch, supervised_tokens, tokenize_pair, training_pairs
from rt_ray.student.deepspeed_config import build_deepspeed_config, warmup_then_linear_decay
from rt_ray.artifacts import load_student
from rt_ray.student.models import build_student, save_student, student_spec, train_tokenizer
from rt_ray.tasks.base import Sample

TEXTS = ["A coin is heads up. Ann flips the coin. Is the coin still heads up? ### Ann flips it. --> no"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def test_decoder_labels_mask_exactly_the_prompt_tokens(tokenizer):
    source_ids = tokenizer("Q? ###", add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(" r --> no", add_special_tokens=False)["input_ids"]
    row = tokenize_pair(tokenizer, "Q? ###", " r --> no", "decoder", max_length=512)
    assert row["input_ids"] == source_ids + target_ids + [tokenizer.eos_token_id]
    assert row["labels"] == [IGNORE_INDEX] * len(source_ids) + target_ids + [tokenizer.eos_token_id]


def test_encoder_decoder_keeps_input_and_labels_apart(tokenizer):
    row = tokenize_pair(tokenizer, "Q?", "r --> no", "encoder-decoder", max_length=512)
    eos = tokenizer.eos_token_id
    assert row["input_ids"] == tokenizer("Q?", add_special_tokens=False)["input_ids"] + [eos]
    assert row["labels"] == tokenizer("r --> no", add_special_tokens=False)["input_ids"] + [eos]
    assert IGNORE_INDEX not in row["labels"]


def test_truncation_keeps_inputs_and_labels_aligned(tokenizer):
    row = tokenize_pair(tokenizer, "Q? " * 50, " r" * 50, "decoder", max_length=16)
    assert len(row["input_ids"]) == len(row["labels"]) == 16


def test_pad_batch_pads_right_and_ignores_padding_in_the_loss():
    batch = pad_batch([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert supervised_tokens(batch) == 3


def test_training_pairs_take_the_first_d_rationales_or_answers_only():
    filtered = [{"question": "Q", "rationale": f"r{i}", "answer": "no", "sample_index": i} for i in (0, 2, 3, 5)]
    assert [t for _, t in training_pairs(filtered, [], "ft_cot", 4, "decoder")] == [" r0 --> no", " r2 --> no", " r3 --> no"]
    assert len(training_pairs(filtered, [], "ft_cot", None, "decoder")) == 4
    train = [Sample("1", "Q1", "yes", "yes_no"), Sample("2", "Q2", "no", "yes_no")]
    assert training_pairs(filtered, train, "vanilla", None, "decoder") == [("Q1 ###", " yes"), ("Q2 ###", " no")]


@pytest.mark.parametrize("arch", ["decoder", "encoder-decoder"])
def test_tiny_student_saves_and_reloads_with_the_same_outputs(arch, tmp_path):
    spec = student_spec(StudentConfig(arch=arch, tiny_hidden=32, tiny_layers=2, tiny_heads=2, tiny_vocab=300), TEXTS)
    model, tokenizer = build_student(spec, seed=0)
    again, _ = build_student(spec, seed=0)
    ids = torch.tensor([tokenizer("Ann flips the coin", add_special_tokens=False)["input_ids"]])
    kwargs = {"input_ids": ids} if arch == "decoder" else {"input_ids": ids, "labels": ids}
    model.eval()
    again.eval()
    assert torch.equal(model(**kwargs).logits, again(**kwargs).logits), "seeded: every worker builds the same student"
    save_student(model, tokenizer, tmp_path / "m", {"arch": arch, "format": "ft_cot"})
    loaded, loaded_tokenizer, meta = load_student(tmp_path / "m")
    loaded.eval()
    assert meta["arch"] == arch and loaded_tokenizer("Ann")["input_ids"] == tokenizer("Ann")["input_ids"]
    assert torch.allclose(model(**kwargs).logits, loaded(**kwargs).logits)


def test_load_student_refuses_a_folder_that_is_not_a_student(tmp_path):
    with pytest.raises(FileNotFoundError, match="rt-ray train"):
        load_student(tmp_path)


def test_deepspeed_config_follows_the_train_section():
    ds = build_deepspeed_config(TrainConfig(zero_stage=3, offload=True, batch_size=8, grad_accum=2, precision="bf16"))
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (8, 2)
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    plain = build_deepspeed_config(TrainConfig(zero_stage=0))
    assert plain["zero_optimization"] == {"stage": 0}


def test_schedule_warms_up_then_decays_to_zero():
    values = [warmup_then_linear_decay(s, 10, 100) for s in range(100)]
    assert values[0] == 0.1 and values[9] == 1.0
    assert values[50] == pytest.approx(50 / 90)
    assert warmup_then_linear_decay(100, 10, 100) == 0.0


def test_typical_output_tokens_is_the_99th_percentile_target_length_plus_a_margin():
    from rt_ray.student.data import IGNORE_INDEX, typical_output_tokens

    rows = [{"labels": [IGNORE_INDEX] * 5 + [1] * n} for n in range(1, 101)]  # targets of 1..100 tokens
    assert typical_output_tokens(rows) == 100 + 8
    assert typical_output_tokens(rows[:10], quantile=0.5, margin=0) == 6
    assert typical_output_tokens([]) == 8
