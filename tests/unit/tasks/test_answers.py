import pytest

from rt_ray.tasks.answers import extract_answer, is_correct


@pytest.mark.parametrize(
    "text, prefix, expected",
    [
        (" There are 1,250 apples.", None, "1250"),  # commas removed
        (" 3 boxes of 6 make 18 --> 18", "-->", "18"),  # prefix present: first after it
        (" 3 boxes of 6 make 18 and 2 more", "-->", "2"),  # prefix missing: last candidate
        (" The temperature drops to -4.5 degrees.", None, "-4.5"),
        (" no number here", None, None),
    ],
)
def test_number_extraction_follows_position_rules(text, prefix, expected):
    assert extract_answer(text, "number", prefix=prefix) == expected


def test_number_judged_numerically_so_18_point_0_equals_18():
    assert is_correct("18.0", "18", "number")
    assert is_correct("1250", "1,250", "number")
    assert not is_correct("18.5", "18", "number")
    assert not is_correct(None, "18", "number")


CHOICES = ["pink ball", "white ball", "red ball"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (" (C) red ball.", "C"),
        (" A coin is mentioned, but the answer is (B).", "B"),  # sentence-start "A" is not a choice
        (" A ball moves around. The answer is C.", "C"),
        (" Bob ends with the white ball.", "B"),  # no letter: fall back to the choice text
        (" Among A through E, the answer must be B", "B"),  # "A through" reads as prose: B stands alone
        (" nothing useful", None),
    ],
)
def test_choice_extraction_prefers_letters_and_ignores_articles(text, expected):
    assert extract_answer(text, "choice", choices=CHOICES) == expected


def test_choice_letters_outside_the_choice_range_are_ignored():
    assert extract_answer(" It is (E), no wait, (A).", "choice", choices=CHOICES) == "A"


def test_choice_after_ft_cot_prefix():
    text = " Alice swaps with Bob, who had (A) before. --> (C)"
    assert extract_answer(text, "choice", prefix="-->", choices=CHOICES) == "C"
    assert extract_answer(" Alice ends with (B) then (C)", "choice", prefix="-->", choices=CHOICES) == "C"


@pytest.mark.parametrize(
    "text, prefix, expected",
    [
        (" no.", None, "no"),
        (' "Yes", the coin is still heads up.', None, "yes"),
        (" It was flipped twice, so yes --> no", "-->", "no"),
        (" The answer is No.\n", None, "no"),
        (" I do not know", None, None),  # "not" is not "no"
    ],
)
def test_yes_no_extraction(text, prefix, expected):
    assert extract_answer(text, "yes_no", prefix=prefix) == expected


def test_yes_no_gold_is_case_insensitive():
    assert is_correct("yes", "Yes", "yes_no")
    assert not is_correct("no", "Yes", "yes_no")


@pytest.mark.parametrize(
    "text, prefix, expected",
    [
        (' "nkrt".', None, "nkrt"),
        (' The last letters are e, a, and n. --> ean', "-->", "ean"),
        (' Concatenating gives "ean".', "-->", "ean"),  # prefix missing: last candidate
    ],
)
def test_text_extraction_strips_quotes_and_periods(text, prefix, expected):
    assert extract_answer(text, "text", prefix=prefix) == expected


def test_text_is_judged_case_sensitively():
    assert is_correct("ean", "ean", "text")
    assert not is_correct("EAN", "ean", "text")


def test_date_extraction_normalises_to_mm_dd_yyyy():
    assert extract_answer(" Today is 5/1/2021, so tomorrow is 05/02/2021.", "date", prefix="-->") == "05/02/2021"
    assert is_correct("05/02/2021", "5/2/2021", "date")
