"""Chat with a student that has learned its task: a chat client asking a training-style question gets
the student's rationale and the right answer, with no formatting of its own and no max_tokens."""

from __future__ import annotations

import openai
import pytest

from rt_ray.config import parse_config
from rt_ray.simulator import free_port
from tests.tiny import train_coin_flip_student

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(ray_cluster, tmp_path_factory):
    from ray import serve

    from rt_ray.serve.app import app_from_config

    folder, held_out = train_coin_flip_student(tmp_path_factory.mktemp("chat") / "model")
    port = free_port()
    cfg = parse_config({"serve": {"model": str(folder), "port": port, "num_cpus": 1}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(app_from_config(cfg), name="student", route_prefix="/")
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0), folder, held_out
    serve.shutdown()


def test_a_chat_question_gets_the_students_rationale_and_the_right_answer(trained):
    from rt_ray.student.formats import student_input
    from rt_ray.student.generation import generate_texts
    from rt_ray.artifacts import load_student
    from rt_ray.tasks import get_task
    from rt_ray.tasks.answers import FT_COT_PREFIX

    client, folder, held_out = trained
    model, tokenizer, meta = load_student(folder)
    task, questions = get_task("coin_flip"), held_out[:12]
    local = generate_texts(model, tokenizer, "decoder", [student_input(s.question, "decoder") for s in questions],
                           meta["default_max_tokens"])  # fmt: skip
    replies = [client.chat.completions.create(model="rt-ray-student", messages=[{"role": "user", "content": s.question}])
               for s in questions]  # fmt: skip
    texts = [reply.choices[0].message.content for reply in replies]
    # Exactly what the student writes for its own input format ("question ###"), rationale first.
    assert texts == [output.text for output in local]
    assert all(FT_COT_PREFIX in text and len(text.split(FT_COT_PREFIX)[0].split()) >= 8 for text in texts), texts
    right = sum(task.parse(text, prefix=FT_COT_PREFIX) == s.answer for text, s in zip(texts, questions))
    assert right >= 9, f"{right} of {len(questions)} right: {texts}"  # the student is right on ~87 % of held-out questions
    assert all(reply.choices[0].finish_reason == "stop" for reply in replies)  # the default max_tokens reached the end
