"""Zero-shot-CoT teacher prompts (Kojima et al.), the same for every task.

    rationale_prompt("A coin is heads up. ...")   # step 1: the teacher writes its reasoning
    answer_prompt(question, rationale)             # step 2: the teacher states its answer
"""

RATIONALE_TRIGGER = "Let's think step by step."
ANSWER_TRIGGER = "Therefore, the answer is"


def rationale_prompt(question: str) -> str:
    return f"Q: {question}\nA: {RATIONALE_TRIGGER}"


def answer_prompt(question: str, rationale: str) -> str:
    """Step 2 continues step 1 after the rationale, exactly as the teacher produced it."""
    return f"{rationale_prompt(question)}{rationale}\n{ANSWER_TRIGGER}"
