"""Request shapes as OpenAI clients send them, without a server."""

import pytest
from pydantic import ValidationError

from rt_ray.serve.schemas import ChatRequest, CompletionRequest, RequestError, error_param


@pytest.mark.parametrize(
    "prompt, expected",
    [("Q ###", ["Q ###"]), (["a", "b"], ["a", "b"]), ([5, 6, 7], [[5, 6, 7]]), ([[5, 6], [7]], [[5, 6], [7]])],
)
def test_every_prompt_form_of_the_completions_api_becomes_one_entry_per_prompt(prompt, expected):
    assert CompletionRequest(prompt=prompt).prompts() == expected


def test_an_empty_prompt_list_is_refused_naming_prompt():
    with pytest.raises(RequestError) as error:
        CompletionRequest(prompt=[]).prompts()
    assert error.value.param == "prompt"


def test_max_completion_tokens_wins_then_max_tokens_then_the_servers_default():
    assert CompletionRequest(prompt="q").token_budget(96) == 96
    assert CompletionRequest(prompt="q", max_tokens=None).token_budget(96) == 96
    assert CompletionRequest(prompt="q", max_tokens=10).token_budget(96) == 10
    assert ChatRequest(messages=[{"role": "user", "content": "q"}], max_tokens=10, max_completion_tokens=20).token_budget(96) == 20


def test_chat_reads_content_parts_and_the_developer_role_and_takes_the_last_user_question():
    request = ChatRequest(messages=[
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "A coin is heads up."}, {"type": "text", "text": "Is it?"}]},
    ])  # fmt: skip
    assert request.question() == "A coin is heads up.\nIs it?"
    with pytest.raises(RequestError, match="image_url"):
        ChatRequest(messages=[{"role": "user", "content": [{"type": "image_url"}]}]).question()
    with pytest.raises(RequestError, match="user message"):
        ChatRequest(messages=[{"role": "system", "content": "x"}]).question()


def test_validation_errors_name_the_field_not_pydantics_union_branches():
    with pytest.raises(ValidationError) as error:
        CompletionRequest.model_validate({"prompt": {"not": "a prompt"}})
    assert {error_param(("body", *problem["loc"])) for problem in error.value.errors()} == {"prompt"}
    with pytest.raises(ValidationError) as error:
        ChatRequest.model_validate({"messages": [{"role": "robot", "content": "x"}]})
    assert error_param(("body", *error.value.errors()[0]["loc"])) == "messages.0.role"
    assert error_param(("body",)) == "body"
