from rt_ray.student.scoring import accuracy_report, judge_generation

# Hand-checked student outputs: (generated text, gold, answer type, choices, expected correct)
HAND_CHECKED = [
    (" Ann flips it, so it is tails up. --> no", "no", "yes_no", None, True),
    (" Ann flips it, so it is tails up. --> yes", "no", "yes_no", None, False),
    (" Ann flips it, so no. Bo flips it back, so yes", "yes", "yes_no", None, True),  # no arrow: last candidate
    (" 3 boxes of 6 are 18 --> 18.0", "18", "number", None, True),
    (" Bob has the red ball. --> (C)", "C", "choice", ["pink ball", "white ball", "red ball"], True),
    (" Bob has the red ball. --> (A)", "C", "choice", ["pink ball", "white ball", "red ball"], False),
    (" The letters are n and a. --> na", "na", "text", None, True),
    (" garbage without an answer", "yes", "yes_no", None, False),
]


def test_judged_generations_match_the_hand_checked_verdicts():
    for text, gold, kind, choices, expected in HAND_CHECKED:
        assert judge_generation(text, gold, kind, choices, expects_prefix=True)["correct"] is expected, text


def test_accuracy_report_over_hand_checked_predictions():
    predictions = [
        {"answer_type": kind, **judge_generation(text, gold, kind, choices, expects_prefix=True)}
        for text, gold, kind, choices, _ in HAND_CHECKED
    ]
    report = accuracy_report(predictions)
    assert report["n"] == 8
    assert report["accuracy"] == 5 / 8
    assert report["accuracy_yes_no"] == 2 / 4
    assert report["accuracy_choice"] == 1 / 2
    assert report["correct_format"] == 6 / 8


def test_vanilla_outputs_are_read_without_the_arrow():
    assert judge_generation(" no", "no", "yes_no", None, expects_prefix=False)["correct"]
