"""The teacher client against the simulator over real HTTP on loopback (no Ray needed)."""

import asyncio

import pytest
from aiohttp import web

from rt_ray.config import TeacherConfig
from rt_ray.teacher.accounting import CallStats
from rt_ray.teacher.client import TeacherClient, TeacherFatalError, TeacherRequestFailed
from rt_ray.prompts import rationale_prompt
from rt_ray.simulator import free_port
from rt_ray.simulator.server import STATE, SimulatorSettings, make_app

QUESTION = 'A coin is heads up. Ann flips the coin. Bo does not flip the coin. Is the coin still heads up? Note that "flip" here means "reverse".'


async def with_simulator(settings: SimulatorSettings, body):
    port = free_port()
    runner = web.AppRunner(make_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await body(f"http://127.0.0.1:{port}/v1", runner.app[STATE])
    finally:
        await runner.cleanup()


def teacher(tmp_path, base_url, **overrides) -> TeacherConfig:
    return TeacherConfig(base_url=base_url, cache_dir=tmp_path / "cache", backoff_base_s=0.01, backoff_max_s=0.05,
                         request_timeout_s=1.0, **overrides)  # fmt: skip


def test_faults_are_retried_until_every_sample_arrives(tmp_path):
    settings = SimulatorSettings(latency_s=0.0, fault_rate=0.5, hang_s=3.0, retry_after_ms=10, seed=1)

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, max_retries=12), None)
        stats = CallStats()
        results = await asyncio.gather(
            *(client.samples(rationale_prompt(f"{QUESTION} #{i}"), 4, 0.7, 128, stats) for i in range(12))
        )
        return results, stats, state

    results, stats, state = asyncio.run(with_simulator(settings, body))
    assert all(len(r) == 4 and len({s["text"] for s in r}) == 4 for r in results)
    faults = [e["fault"] for e in state.log if e["fault"]]
    assert stats.retries == len(faults) > 0
    assert stats.requests == len(state.log)


def test_cached_samples_are_not_requested_again_and_a_larger_pool_extends_it(tmp_path):
    settings = SimulatorSettings(latency_s=0.0)

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url), None)
        first = await client.samples(rationale_prompt(QUESTION), 2, 0.7, 128, CallStats())
        again = await client.samples(rationale_prompt(QUESTION), 4, 0.7, 128, CallStats())
        return first, again, [e["n"] for e in state.log]

    first, again, sent = asyncio.run(with_simulator(settings, body))
    assert sent == [2, 2]  # the second call asked only for samples 2 and 3
    assert again[:2] == first


def test_requests_take_turns_over_connection_pools_of_bounded_size(tmp_path):
    settings = SimulatorSettings(latency_s=0.05)

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, max_concurrency=40), None, connections_per_pool=16)
        stats = CallStats()
        results = await asyncio.gather(*(client.samples(rationale_prompt(f"{QUESTION} #{i}"), 1, 0.7, 128, stats) for i in range(40)))
        turns = [client._connect() for _ in range(6)]
        return results, stats, turns

    results, stats, turns = asyncio.run(with_simulator(settings, body))
    assert all(len(r) == 1 for r in results) and stats.requests == 40
    assert len({id(pool) for pool in turns}) == 3  # 40 in flight: 3 pools of at most 16
    assert turns[:3] == turns[3:]  # in turn


def test_bad_key_is_fatal_and_not_retried(tmp_path):
    settings = SimulatorSettings(latency_s=0.0, api_key="right-key")

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url), "wrong-key")
        with pytest.raises(TeacherFatalError, match="HTTP 401"):
            await client.samples(rationale_prompt(QUESTION), 1, 0.0, 128, CallStats())
        return len(state.log)

    assert asyncio.run(with_simulator(settings, body)) == 0


def test_persistent_failure_gives_up_after_max_retries(tmp_path):
    settings = SimulatorSettings(latency_s=0.0, fault_rate=1.0, fault_kinds=("server_error",))

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, max_retries=3), None)
        stats = CallStats()
        with pytest.raises(TeacherRequestFailed, match="after 3 retries") as failed:
            await client.samples(rationale_prompt(QUESTION), 1, 0.0, 128, stats)
        return stats, len(state.log), failed.value

    stats, served, failure = asyncio.run(with_simulator(settings, body))
    assert served == 4 and stats.retries == 3 and stats.failed_requests == 1
    import pickle

    # the kind of teacher failure stats.json counts, kept when the error crosses Ray's processes
    assert failure.kind == pickle.loads(pickle.dumps(failure)).kind == "retries_exhausted"


def test_answer_prompts_travel_several_to_a_request_and_come_back_to_their_own_prompt(tmp_path):
    from rt_ray.prompts import answer_prompt

    settings = SimulatorSettings(latency_s=0.0)
    flips = [f"{QUESTION.split(' Is the coin')[0]} {'Cy flips the coin. ' * k}Is the coin still heads up?" for k in range(5)]
    prompts = [answer_prompt(q, f" So the answer is {'yes' if k % 2 == 0 else 'no'}.") for k, q in enumerate(flips)]

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, prompts_per_request=2), None)
        stats = CallStats()
        first = await client.one_each(prompts, 0.0, 32, stats)
        again = await client.one_each(prompts[:3], 0.0, 32, stats)
        return first, again, stats, [len(e["prompts"]) for e in state.log]

    first, again, stats, sizes = asyncio.run(with_simulator(settings, body))
    assert sizes == [2, 2, 1] and stats.requests == 3 and stats.prompts_sent == 5
    # Prompt k's rationale says yes for even k: each answer belongs to its own prompt.
    assert [a["text"].strip(" .") for a in first] == ["yes", "no", "yes", "no", "yes"]
    assert again == first[:3] and stats.cache_hits == 3


def test_chat_sends_one_answer_prompt_a_request(tmp_path):
    settings = SimulatorSettings(latency_s=0.0)

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, api="chat", prompts_per_request=20), None)
        await client.one_each([rationale_prompt(f"{QUESTION} #{i}") for i in range(3)], 0.0, 32, CallStats())
        return [len(e["prompts"]) for e in state.log]

    assert asyncio.run(with_simulator(settings, body)) == [1, 1, 1]


def test_a_bug_in_the_response_handling_is_raised_at_once_not_retried(tmp_path, monkeypatch):
    """A TypeError in rt-ray's own code is no fault of the teacher's: no retry, no failed question, the error itself."""

    def broken(self, response, expected):
        raise TypeError("planted: a bug in the response handling")

    monkeypatch.setattr(TeacherClient, "_texts", broken)

    async def body(url, state):
        client = TeacherClient(teacher(tmp_path, url, max_retries=5), None)
        stats = CallStats()
        with pytest.raises(TypeError, match="planted"):
            await client.samples(rationale_prompt(QUESTION), 2, 0.7, 128, stats)
        return stats, len(state.log)

    stats, served = asyncio.run(with_simulator(SimulatorSettings(latency_s=0.0), body))
    assert served == 1 and stats.requests == 1 and stats.retries == 0 and stats.failed_requests == 0


def test_a_body_without_a_completions_fields_is_the_endpoints_fault_and_retried(tmp_path):
    from types import SimpleNamespace

    from rt_ray.teacher.client import MalformedResponse, provider_errors

    import openai

    client = TeacherClient(teacher(tmp_path, "http://127.0.0.1:1/v1"), None)
    for body in ("<html>busy</html>", SimpleNamespace(choices=None), SimpleNamespace(choices=[SimpleNamespace(index=0)]),
                 SimpleNamespace(choices=[SimpleNamespace(text="a", finish_reason="stop")])):  # fmt: skip
        with pytest.raises(MalformedResponse) as caught:
            client._texts(body, 1)
        assert isinstance(caught.value, provider_errors(openai))
    assert not issubclass(TypeError, provider_errors(openai)) and not issubclass(KeyError, provider_errors(openai))
