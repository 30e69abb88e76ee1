"""Training samples for the student: text pairs, token ids with the prompt masked, padded batches.

    pairs = training_pairs(filtered_records, train_samples, fmt="ft_cot", degree=4, arch="decoder")
    row = tokenize_pair(tokenizer, *pairs[0], arch="decoder", max_length=512)
    batch = pad_batch([row, ...], pad_id=tokenizer.pad_token_id)   # tensors [batch, seq]
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rt_ray.student.formats import Arch, ft_cot_sample, vanilla_sample
from rt_ray.tasks.base import Sample

IGNORE_INDEX = -100


def training_pairs(
    filtered: Iterable[dict], train: list[Sample], fmt: str, degree: int | None, arch: Arch
) -> list[tuple[str, str]]:
    """Fine-tune-CoT pairs from the kept rationales whose sample index is below D (the first D of
    each question's pool), or vanilla answer-only pairs, one per training question."""
    if fmt == "vanilla":
        return [vanilla_sample(s.question, s.answer, arch) for s in train]
    return [
        ft_cot_sample(r["question"], r["rationale"], r["answer"], arch)
        for r in filtered
        if degree is None or r["sample_index"] < degree
    ]


def tokenize_pair(tokenizer, source: str, target: str, arch: Arch, max_length: int) -> dict[str, list[int]]:
    """Decoder: one sequence, labels -100 over the prompt. Encoder-decoder: input and labels apart.
    EOS is appended by hand so hub and tiny tokenizers behave the same."""
    eos = tokenizer.eos_token_id
    source_ids = tokenizer(source, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
    if arch == "decoder":
        input_ids = (source_ids + target_ids)[:max_length]
        labels = ([IGNORE_INDEX] * len(source_ids) + target_ids)[:max_length]
        return {"input_ids": input_ids, "labels": labels}
    return {"input_ids": (source_ids + [eos])[:max_length], "labels": target_ids[:max_length]}


TOKEN_SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32()))])


def token_table(rows: Iterable[dict]) -> pa.Table:
    """Tokenized samples as Arrow int32 lists: ~0.8 KB per 200-token sample, against ~7 KB as Python ints."""
    rows = list(rows)
    return pa.table({name: pa.array([r[name] for r in rows], TOKEN_SCHEMA.field(name).type) for name in TOKEN_SCHEMA.names},
                    schema=TOKEN_SCHEMA)  # fmt: skip


def tokenized_table(tokenizer, pairs: list[tuple[str, str]], arch: Arch, max_length: int, chunk: int = 10_000) -> pa.Table:
    """``pairs`` tokenized ``chunk`` at a time into one Arrow table: the driver never holds every sample as lists."""
    tables = [
        token_table(tokenize_pair(tokenizer, source, target, arch, max_length) for source, target in pairs[start : start + chunk])
        for start in range(0, len(pairs), chunk)
    ]
    return pa.concat_tables(tables) if tables else TOKEN_SCHEMA.empty_table()


def target_lengths(table: pa.Table) -> np.ndarray:
    """Each sample's supervised tokens (labels that are not IGNORE_INDEX), EOS included."""
    labels = table["labels"].combine_chunks()
    supervised = pc.not_equal(labels.flatten(), IGNORE_INDEX).to_numpy(zero_copy_only=False)
    return np.bincount(pc.list_parent_indices(labels).to_numpy(), weights=supervised, minlength=len(labels)).astype(int)


def typical_output_tokens(lengths, quantile: float = 0.99, margin: int = 8) -> int:
    """Room for the student's typical output: the 99th percentile of its training targets' token
    counts (``target_lengths``) plus a margin. Serving uses it as the default max_tokens."""
    lengths = sorted(int(n) for n in lengths)
    if not lengths:
        return margin
    return lengths[min(len(lengths) - 1, int(quantile * len(lengths)))] + margin


def pad_arrays(batch: dict[str, np.ndarray], pad_id: int):
    """``pad_batch`` for a streamed batch (Ray Data's numpy format: a column of token-id arrays)."""
    import torch

    ids, labels = batch["input_ids"], batch["labels"]
    width, label_width = max(len(s) for s in ids), max(len(s) for s in labels)  # apart for an encoder-decoder
    padded = {"input_ids": np.full((len(ids), width), pad_id, np.int64), "attention_mask": np.zeros((len(ids), width), np.int64),
              "labels": np.full((len(ids), label_width), IGNORE_INDEX, np.int64)}  # fmt: skip
    for row, (sequence, target) in enumerate(zip(ids, labels)):
        padded["input_ids"][row, : len(sequence)] = sequence
        padded["attention_mask"][row, : len(sequence)] = 1
        padded["labels"][row, : len(target)] = target
    return {name: torch.from_numpy(array) for name, array in padded.items()}


def epoch_batches(rows: list, batch_size: int, rng, bucket_batches: int = 0) -> list[list]:
    """One epoch of ``rows`` cut into batches after a shuffle by ``rng``. With ``bucket_batches``, each
    window of that many batches is sorted by sequence length before it is cut, and the batches are
    shuffled again: a batch pads to its longest row, so rows of like length waste less compute, while
    the windows keep an epoch's order random at the scale of the whole set."""
    order = list(rows)
    rng.shuffle(order)
    if not bucket_batches:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    window = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), window):
        by_length = sorted(order[start : start + window], key=lambda r: len(r["input_ids"]))
        batches += [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    rng.shuffle(batches)
    return batches


def padding_share(batches: list[list]) -> float:
    """The share of a padded batch's positions that are padding, over the batches."""
    real = sum(len(r["input_ids"]) for batch in batches for r in batch)
    padded = sum(len(batch) * max(len(r["input_ids"]) for r in batch) for batch in batches if batch)
    return 1 - real / padded if padded else 0.0


def pad_batch(rows: list[dict], pad_id: int):
    """Right-padded tensors: input_ids/attention_mask/labels, labels padded with -100. Shapes [batch, seq]."""
    import torch

    def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(s) for s in sequences)
        return torch.tensor([list(s) + [value] * (width - len(s)) for s in sequences], dtype=torch.long)

    input_ids = [list(r["input_ids"]) for r in rows]
    return {
        "input_ids": pad(input_ids, pad_id),
        "attention_mask": pad([[1] * len(s) for s in input_ids], 0),
        "labels": pad([list(r["labels"]) for r in rows], IGNORE_INDEX),
    }


def supervised_tokens(batch) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())
