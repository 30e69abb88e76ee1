"""The served model's own process (rt_ray/serve/model_process.py), with a real tiny student in a real child process."""

from __future__ import annotations

import asyncio
import time

import pytest

from rt_ray.serve.model_process import ModelProcess, ModelProcessError
from rt_ray.student.generation import generate_texts
from tests.tiny import save_untrained_student

PROMPTS = [f"A coin is heads up. Person {i} flips it. Is it still heads up? ###" for i in range(6)]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return save_untrained_student(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def model(student):
    process = ModelProcess(str(student), None, threads=1, max_batch_size=4, wait_s=0.05)
    yield process
    process.close()


def test_concurrent_requests_get_what_generate_gives_each_prompt_with_its_own_budget(model, student):
    from rt_ray.artifacts import load_student

    local, tokenizer, meta = load_student(student)
    budgets = [3, 9, 16, 16, 5, 12]
    expected = [generate_texts(local.eval(), tokenizer, meta["arch"], [p], b)[0] for p, b in zip(PROMPTS, budgets)]

    async def ask_all():
        return await asyncio.gather(*(model.generate(p, b) for p, b in zip(PROMPTS, budgets)))

    got = asyncio.run(ask_all())
    assert [g.text for g in got] == [e.text for e in expected]
    assert [g.completion_tokens for g in got] == [e.completion_tokens for e in expected]
    assert all(g.completion_tokens <= b for g, b in zip(got, budgets))


def test_the_replica_side_knows_the_students_format_and_context(model):
    assert model.arch == "decoder" and model.meta["format"] == "ft_cot"
    assert model.context and model.context > 16
    assert model.tokenizer("###", add_special_tokens=False)["input_ids"]


def test_a_stream_sends_the_same_text_and_can_be_left_early(model):
    async def run():
        whole = (await model.generate(PROMPTS[0], 16)).text
        pieces = [piece async for piece in model.stream(PROMPTS[0], 16)]
        stream = model.stream(PROMPTS[1], 16)
        first = await stream.__anext__()
        await stream.aclose()  # the rest is dropped; the model serves on
        after = await model.generate(PROMPTS[2], 4)
        return whole, pieces, first, after

    whole, pieces, first, after = asyncio.run(run())
    assert "".join(pieces).strip() == whole.strip()
    assert first and after.completion_tokens <= 4


def test_a_model_that_cannot_load_is_one_clear_error(tmp_path):
    with pytest.raises(ModelProcessError, match="could not load"):
        ModelProcess(str(tmp_path / "missing"), None)


def test_callers_waiting_when_the_process_dies_get_an_error_not_a_hang(student):
    process = ModelProcess(str(student), None, max_batch_size=2, wait_s=0.0)
    process._process.kill()

    async def ask():
        return await asyncio.wait_for(process.generate(PROMPTS[0], 8), 10)

    deadline = time.monotonic() + 10
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.alive()
    with pytest.raises(ModelProcessError, match="gone|exited"):
        asyncio.run(ask())


def test_the_model_process_computes_on_the_device_it_was_given(student):
    """serve.num_gpus decides the device (rt_ray.devices.replica_device), not torch.cuda.is_available():
    here ``meta`` stands in for ``cuda``, which a CPU machine cannot give."""
    process = ModelProcess(str(student), None, threads=1, device="meta")
    try:
        assert process.device == "meta"
    finally:
        process.close()
