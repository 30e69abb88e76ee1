"""The serve stage over HTTP: a tiny student on Ray Serve, driven by httpx and the openai client."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import openai
import psutil
import pytest

from rt_ray.config import parse_config
from rt_ray.simulator import free_port
from tests.processes import own_processes
from tests.tiny import save_untrained_student

pytestmark = pytest.mark.integration
TOKEN_ENV = "RT_RAY_SERVE_TEST_TOKEN"
TOKEN = "serve-test-token-0123456789"
REPLICA = "ServeReplica:student:StudentServer"
MODEL_DIR: list = []  # the served student's folder, for its tokenizer


@pytest.fixture(scope="module")
def server(ray_cluster, tmp_path_factory):
    """Two replicas of a tiny (untrained) student: the API does not care how well it reasons."""
    from ray import serve

    from rt_ray.serve.app import app_from_config

    root = tmp_path_factory.mktemp("serve")
    save_untrained_student(root / "model")
    MODEL_DIR.append(root / "model")
    port = free_port()
    cfg = parse_config({"serve": {"model": str(root / "model"), "port": port, "num_replicas": 2, "num_cpus": 0.5,
                                  "max_tokens_cap": 32, "max_prompt_chars": 500, "api_key_env": TOKEN_ENV}})  # fmt: skip
    os.environ[TOKEN_ENV] = TOKEN
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(app_from_config(cfg), name="student", route_prefix="/")
    finally:
        os.environ.pop(TOKEN_ENV)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def post(base: str, path: str, body, token: str | None = TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, str):
        return httpx.post(base + path, content=body, headers={**headers, "Content-Type": "application/json"}, timeout=60)
    return httpx.post(base + path, json=body, headers=headers, timeout=60, **kwargs)


def test_health_needs_no_token_but_every_other_route_does(server):
    assert httpx.get(server + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server + "/v1/models").status_code == 401
    assert httpx.get(server + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    listed = httpx.get(server + "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert listed["data"][0]["id"] == "rt-ray-student"
    response = post(server, "/v1/completions", {"prompt": "Q ###", "max_tokens": 4}, token=None)
    assert response.status_code == 401 and response.json()["error"]["message"] == "missing or invalid bearer token", response.text


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/v1/completions", "{not json", "request body is not valid JSON"),
        ("/v1/completions", {"prompt": "Q", "max_tokens": "lots"}, "max_tokens"),
        ("/v1/completions", {"max_tokens": 4}, "prompt: Field required"),
        ("/v1/completions", {"prompt": "   "}, "prompt must not be empty"),
        ("/v1/completions", {"prompt": "x" * 501}, "the limit is 500"),
        ("/v1/completions", {"prompt": "ŝ" * 300, "max_tokens": 4}, "prompt has 600 tokens; the model's context holds 512"),
        ("/v1/completions", {"prompt": "Q", "max_tokens": 33}, "above this server's cap of 32"),
        ("/v1/completions", {"prompt": "Q", "temperature": 3.5}, "temperature"),
        ("/v1/completions", {"prompt": "Q", "top_p": 0}, "top_p"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ("/v1/solve", {"task": "chess", "question": "Is it mate?"}, "unknown task.name 'chess'"),
        ("/v1/solve", {"task": "coin_flip"}, "question: Field required"),
        ("/v1/solve", {"task": "coin_flip", "question": " "}, "question must not be empty"),
        ("/v1/completions", "", "request body must be a JSON object"),
        ("/v1/completions", "[1, 2]", "request body must be a JSON object"),
        ("/v1/completions", {"prompt": []}, "prompt must not be an empty list"),
        ("/v1/completions", {"prompt": [[10**9]]}, "outside this model's vocabulary"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "image_url"),
    ],
)
def test_bad_requests_get_a_400_that_names_the_problem(server, path, body, message):
    response = post(server, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert error["param"], "every 400 names the field at fault (or body)"
    assert error["code"] is None or isinstance(error["code"], str)


def test_unknown_routes_methods_and_models_get_openais_error_body(server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for response, status, code in (
        (httpx.get(server + "/v1/nowhere", headers=headers), 404, "unknown_url"),
        (httpx.get(server + "/v1/completions", headers=headers), 405, "method_not_allowed"),
        (httpx.get(server + "/v1/models/other-model", headers=headers), 404, "model_not_found"),
    ):
        assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    card = httpx.get(server + "/v1/models/rt-ray-student", headers=headers).json()
    assert card["id"] == "rt-ray-student" and card["rt_ray"]["format"] == "ft_cot"


def test_completions_take_every_prompt_form_and_count_usage_after_a_stop(server):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR[0])
    client = openai.OpenAI(base_url=server + "/v1", api_key=TOKEN)
    alone = {p: client.completions.create(model="rt-ray-student", prompt=p, max_tokens=6).choices[0].text for p in ("A ###", "B ###")}
    listed = client.completions.create(model="rt-ray-student", prompt=["A ###", "B ###"], max_tokens=6, n=2)
    assert [c.index for c in listed.choices] == [0, 1, 2, 3]
    assert [c.text for c in listed.choices] == [alone["A ###"]] * 2 + [alone["B ###"]] * 2
    ids = tokenizer("A ###", add_special_tokens=False)["input_ids"]
    assert client.completions.create(model="rt-ray-student", prompt=ids, max_tokens=6).choices[0].text == alone["A ###"]
    assert [c.text for c in client.completions.create(model="rt-ray-student", prompt=[ids, ids], max_tokens=6).choices] == [alone["A ###"]] * 2

    whole = client.completions.create(model="rt-ray-student", prompt="A coin ###", max_tokens=12).choices[0].text
    stop = whole[len(whole) // 2 :][:3]
    cut = client.completions.create(model="rt-ray-student", prompt="A coin ###", max_tokens=12, stop=[stop])
    returned = cut.choices[0].text
    assert stop not in returned and cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens == len(tokenizer(returned, add_special_tokens=False)["input_ids"])

    default = post(server, "/v1/completions", {"prompt": "A coin ###", "max_tokens": None}).json()
    assert default["usage"]["completion_tokens"] <= 32  # the server's default: the student's typical output, capped


def test_chat_reads_content_parts_the_developer_role_and_max_completion_tokens(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key=TOKEN)
    plain = client.chat.completions.create(model="rt-ray-student", messages=[{"role": "user", "content": "A coin"}], max_tokens=6)
    parts = client.chat.completions.create(
        model="rt-ray-student", max_completion_tokens=6,
        messages=[{"role": "developer", "content": "Think step by step."},
                  {"role": "user", "content": [{"type": "text", "text": "A coin"}]}],
    )  # fmt: skip
    assert parts.choices[0].message.content == plain.choices[0].message.content
    assert parts.usage.completion_tokens <= 6


def test_langchain_openai_talks_to_the_student_for_completions_and_chat(server):
    """A second widely used client: LangChain's completions class always sends prompts as a list."""
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI, OpenAI

    common = {"model": "rt-ray-student", "base_url": server + "/v1", "api_key": TOKEN, "max_tokens": 6, "temperature": 0}
    llm = OpenAI(**common)
    assert isinstance(llm.invoke("A coin ###"), str)
    generations = llm.generate(["A ###", "B ###"]).generations
    assert len(generations) == 2 and all(len(g) == 1 for g in generations)
    chat = ChatOpenAI(**common)
    answer = chat.invoke([HumanMessage(content="A coin")]).content
    assert isinstance(answer, str)
    assert "".join(chunk.content for chunk in chat.stream("A coin")) == answer
    assert chat.invoke([HumanMessage(content=[{"type": "text", "text": "A coin"}])]).content == answer


def test_the_openai_client_gets_completions_chat_and_streams(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key=TOKEN)
    completion = client.completions.create(model="rt-ray-student", prompt="A coin is heads up. ###", max_tokens=8, n=2)
    assert len(completion.choices) == 2 and completion.usage.prompt_tokens > 0
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.completion_tokens <= 16
    chat = client.chat.completions.create(
        model="rt-ray-student", messages=[{"role": "user", "content": "A coin is heads up."}], max_tokens=8
    )
    assert chat.choices[0].message.role == "assistant"
    streamed = "".join(
        chunk.choices[0].text for chunk in client.completions.create(model="rt-ray-student", prompt="A coin ###", max_tokens=8, stream=True)
    )
    whole = client.completions.create(model="rt-ray-student", prompt="A coin ###", max_tokens=8).choices[0].text
    assert streamed == whole, "greedy streaming yields the same text as one response"
    # Chat puts the question in the student's input format ("question ###"), as a chat template would.
    chat_stream = client.chat.completions.create(
        model="rt-ray-student", messages=[{"role": "user", "content": "A coin"}], max_tokens=8, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chat_stream) == whole
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="some-other-model", prompt="Q", max_tokens=2)


def test_solve_returns_rationale_answer_and_raw_text(server):
    response = post(server, "/v1/solve", {"task": "coin_flip", "question": "A coin is heads up. Ann flips the coin."})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task", "rationale", "answer", "raw"}
    assert body["rationale"] == body["raw"].split("-->")[0].strip()
    from rt_ray.tasks import get_task

    assert body["answer"] == get_task("coin_flip").parse(body["raw"], prefix="-->")


def test_500_concurrent_requests_all_succeed(server):
    async def hammer() -> list[int]:
        limits = httpx.Limits(max_connections=500)
        async with httpx.AsyncClient(limits=limits, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            responses = await asyncio.gather(
                *(client.post(server + "/v1/completions", json={"prompt": f"Q{i} ###", "max_tokens": 4}) for i in range(500))
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(hammer())
    assert statuses.count(200) == 500, {s: statuses.count(s) for s in set(statuses)}


def replica_processes() -> list[psutil.Process]:
    return own_processes(REPLICA)


def test_a_replica_killed_under_load_is_replaced_and_later_requests_succeed(server):
    before = replica_processes()
    assert len(before) == 2

    async def load(seconds: float) -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            deadline = time.monotonic() + seconds

            async def loop(i: int) -> None:
                while time.monotonic() < deadline:
                    try:
                        r = await client.post(server + "/v1/completions", json={"prompt": f"Q{i} ###", "max_tokens": 4})
                        statuses.append(r.status_code)
                    except httpx.HTTPError:
                        statuses.append(-1)

            await asyncio.gather(*(loop(i) for i in range(16)))
        return statuses

    async def kill_during_load() -> list[int]:
        task = asyncio.ensure_future(load(6.0))
        await asyncio.sleep(1.5)
        before[0].kill()
        return await task

    during = asyncio.run(kill_during_load())
    assert during.count(200) > 0
    deadline = time.monotonic() + 120
    while len(replica_processes()) < 2 or before[0].pid in [p.pid for p in replica_processes()]:
        assert time.monotonic() < deadline, "the killed replica was not replaced"
        time.sleep(1)
    time.sleep(2)
    after = [post(server, "/v1/completions", {"prompt": f"Q{i} ###", "max_tokens": 4}).status_code for i in range(20)]
    assert after == [200] * 20
