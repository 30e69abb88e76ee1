import contextlib

import pytest
import torch

from rt_ray.config import StudentConfig, TrainConfig
from rt_ray.student.data import IGNORE_INDEX, pad_batch, supervised_tokens, tokenize_pair, training_pairs
from rt_ray.student.deepspeed_config import build_deepspeed_config, warmup_then_linear_decay
from rt_ray.artifacts import load_student
from rt_ray.student.models import build_student, enable_gradient_checkpointing, save_student, student_spec, train_tokenizer
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
    from rt_ray.student.data import IGNORE_INDEX, target_lengths, token_table, typical_output_tokens

    rows = [{"input_ids": [1] * (5 + n), "labels": [IGNORE_INDEX] * 5 + [1] * n} for n in range(1, 101)]  # targets of 1..100 tokens
    lengths = target_lengths(token_table(rows))
    assert list(lengths) == list(range(1, 101))
    assert typical_output_tokens(lengths) == 100 + 8
    assert typical_output_tokens(lengths[:10], quantile=0.5, margin=0) == 6
    assert typical_output_tokens([]) == 8


def test_the_token_table_holds_the_tokenized_pairs_and_streamed_batches_pad_like_pad_batch(tokenizer):
    import numpy as np

    from rt_ray.student.data import pad_arrays, tokenized_table

    pairs = [("Q? ###", " r --> no"), ("A longer question? ###", " a longer rationale --> yes")] * 3
    table = tokenized_table(tokenizer, pairs, "decoder", max_length=64, chunk=4)  # two chunks
    rows = [tokenize_pair(tokenizer, s, t, "decoder", 64) for s, t in pairs]
    assert table.to_pylist() == rows and str(table.schema.field("input_ids").type) == "list<item: int32>"
    for arch in ("decoder", "encoder-decoder"):  # an encoder-decoder's labels are longer than its inputs here
        rows = [tokenize_pair(tokenizer, s, t, arch, 64) for s, t in pairs]
        streamed = {name: np.array([np.array(r[name], np.int32) for r in rows], dtype=object) for name in ("input_ids", "labels")}
        expected = pad_batch(rows, tokenizer.pad_token_id)
        assert all(torch.equal(pad_arrays(streamed, tokenizer.pad_token_id)[k], expected[k]) for k in expected)


def losses_and_saved_bytes(spec: dict, batch: dict, checkpointing: bool, steps: int = 4) -> tuple[list[float], int]:
    """Loss of each of ``steps`` AdamW steps from the same seed, and the bytes autograd saved for the
    backward pass of the first step (what gradient checkpointing exists to cut)."""
    model, _ = build_student(spec, seed=0)
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()  # dropout on: checkpointing must recompute it with the same masks
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses, saved = [], []

    def keep(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(1)
    for step in range(steps):
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t) if step == 0 else contextlib.nullcontext():
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, sum(saved)


@pytest.mark.parametrize("arch", ["decoder", "encoder-decoder"])
def test_gradient_checkpointing_keeps_the_loss_curve_and_saves_fewer_activations(arch):
    spec = student_spec(StudentConfig(arch=arch, tiny_hidden=64, tiny_layers=4, tiny_heads=4, tiny_vocab=300), texts=TEXTS)
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    rows = [tokenize_pair(tokenizer, TEXTS[0].split(" ###")[0] + " ###", TEXTS[0].split("###")[1], arch, 128)] * 8
    batch = pad_batch(rows, tokenizer.pad_token_id)
    plain_losses, plain_bytes = losses_and_saved_bytes(spec, batch, checkpointing=False)
    checkpointed_losses, checkpointed_bytes = losses_and_saved_bytes(spec, batch, checkpointing=True)
    assert checkpointed_losses == pytest.approx(plain_losses, rel=1e-5)
    assert plain_losses[-1] < plain_losses[0]
    assert checkpointed_bytes < 0.6 * plain_bytes, (checkpointed_bytes, plain_bytes)


@pytest.mark.parametrize("arch", ["decoder", "encoder-decoder"])
def test_a_lora_student_trains_only_its_adapters_and_both_exports_reload_to_the_same_logits(arch, tmp_path):
    from rt_ray.config import LoraSettings
    from rt_ray.student.models import add_lora, parameter_counts, save_lora_student

    pytest.importorskip("peft")
    spec = student_spec(StudentConfig(arch=arch, tiny_hidden=32, tiny_layers=2, tiny_heads=2, tiny_vocab=300), texts=TEXTS)
    lora = LoraSettings(r=4).model_dump()
    model, tokenizer = build_student(spec, seed=3)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    model = add_lora(model, lora, arch)
    counts = parameter_counts(model)
    assert 0 < counts["trainable_params"] < 0.2 * counts["total_params"]
    rows = [tokenize_pair(tokenizer, "A coin is heads up. ###", " Ann flips it. --> no", arch, 64)] * 4
    batch = pad_batch(rows, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = model.state_dict()
    changed = {k for k, v in trained.items() if "lora_" not in k and not torch.equal(v, base[k.replace("base_model.model.", "").replace(".base_layer", "")])}
    assert not changed, f"only adapters change: {sorted(changed)[:3]}"
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in trained.items())  # B starts at 0

    model.eval()
    ids = torch.tensor([tokenizer("A coin is heads up.", add_special_tokens=False)["input_ids"]])
    inputs = {"input_ids": ids} if arch == "decoder" else {"input_ids": ids, "labels": ids}
    with torch.no_grad():
        expected = model(**inputs).logits
    for merged in (True, False):
        folder = tmp_path / f"merged-{merged}"
        save_lora_student(model, tokenizer, folder, {"arch": arch, "spec": spec}, trained, spec, 3, lora, merged=merged)
        assert (folder / "adapter_config.json").is_file() != merged
        reloaded, _, _ = load_student(folder)
        with torch.no_grad():
            assert torch.allclose(reloaded.eval()(**inputs).logits, expected, atol=1e-4)


def test_a_teacher_set_of_test_questions_is_never_trained_on(tmp_path):
    import json

    from rt_ray.config import parse_config
    from rt_ray.student.trainer import TrainingDataError, read_filtered

    (tmp_path / "stats.json").write_text(json.dumps({"status": "complete", "split": "test"}))
    (tmp_path / "filtered.jsonl").write_text("")
    cfg = parse_config({"generation": {"output_dir": str(tmp_path)}})
    with pytest.raises(TrainingDataError, match="answers to the test split, which a student never trains on"):
        read_filtered(cfg)


def test_a_plateau_stops_after_patience_validations_without_a_better_accuracy():
    from rt_ray.student.train_loop import Plateau

    watch = Plateau(patience=2)
    for step, accuracy in [(10, 0.2), (20, 0.5), (30, 0.5), (40, 0.4)]:
        assert not watch.stopped
        watch.add(step, accuracy)
    assert watch.stopped and (watch.best, watch.best_step, watch.last, watch.last_step) == (0.5, 20, 0.4, 40)
    never = Plateau(patience=None)
    for step in range(10):
        never.add(step, 0.0)
    assert not never.stopped


def test_a_plateau_reached_at_the_step_cap_is_no_early_stop():
    from rt_ray.student.train_loop import Plateau

    watch = Plateau(patience=1)
    watch.add(50, 0.6)
    assert not watch.stopped_before(50, max_steps=100)  # no plateau yet
    watch.add(100, 0.6)
    assert watch.stopped and watch.stopped_before(80, max_steps=100)
    assert not watch.stopped_before(100, max_steps=100)  # training ended at the cap anyway


def test_early_stopping_needs_validation_questions():
    from rt_ray.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="train.early_stopping_patience needs train.validation_size"):
        parse_config({"train": {"early_stopping_patience": 3}})


def test_length_buckets_keep_every_row_once_with_its_labels_and_pad_less():
    import random

    from rt_ray.student.data import epoch_batches, padding_share

    rng = random.Random(1)
    rows = []
    for index in range(200):
        size = rng.randint(5, 60)
        rows.append({"input_ids": [index] * size, "labels": [-100] * 3 + [index] * (size - 3)})
    plain = epoch_batches(rows, 8, random.Random(0))
    bucketed = epoch_batches(rows, 8, random.Random(0), bucket_batches=5)
    for batches in (plain, bucketed):
        flat = [r for batch in batches for r in batch]
        assert sorted(r["input_ids"][0] for r in flat) == list(range(200))  # none lost, none twice
        assert all(r["labels"][:3] == [-100] * 3 and r["labels"][3:] == r["input_ids"][3:] for r in flat)
        assert all(len(batch) <= 8 for batch in batches)
    assert padding_share(bucketed) < padding_share(plain) / 3
    # the windows keep the epoch shuffled: batches of short and long rows alternate, not ascend
    longest = [max(len(r["input_ids"]) for r in batch) for batch in bucketed]
    assert longest != sorted(longest)
