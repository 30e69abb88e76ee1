from rt_ray.student.formats import ft_cot_sample, vanilla_sample, zero_shot_prompt
from rt_ray.prompts import answer_prompt, rationale_prompt


def test_zero_shot_cot_prompts_match_the_paper():
    assert rationale_prompt("How many?") == "Q: How many?\nA: Let's think step by step."
    assert answer_prompt("How many?", " 2 plus 2 is 4.") == (
        "Q: How many?\nA: Let's think step by step. 2 plus 2 is 4.\nTherefore, the answer is"
    )


def test_ft_cot_decoder_sample_uses_separator_and_arrow():
    assert ft_cot_sample("Q?", " First, x. ", "no", "decoder") == ("Q? ###", " First, x. --> no")


def test_ft_cot_encoder_decoder_sample_has_no_separator_or_leading_space():
    assert ft_cot_sample("Q?", "First, x.", "no", "encoder-decoder") == ("Q?", "First, x. --> no")


def test_vanilla_and_zero_shot_formats():
    assert vanilla_sample("Q?", "C", "decoder") == ("Q? ###", " C")
    assert vanilla_sample("Q?", "C", "encoder-decoder") == ("Q?", "C")
    assert zero_shot_prompt("Q?", "decoder") == "Q: Q?\n\nA:"
    assert zero_shot_prompt("Q?", "encoder-decoder") == "question: Q?"
