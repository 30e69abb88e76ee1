"""Zero-shot-CoT teacher prompts (Kojima et al.).

    rationale_prompt("A coin is heads up. ...")   # step 1: the teacher writes its reasoning
    answer_prompt(question, rationale)             # step 2: the teacher states its answer
    style = prompt_style(cfg.task)                 # a custom task: its instructions, a trigger for its answer type

The paper's tasks use the plain prompts. A custom task may place instructions before every prompt
and asks for its answer with the trigger of its answer type, as Kojima et al. did per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

RATIONALE_TRIGGER = "Let's think step by step."
ANSWER_TRIGGER = "Therefore, the answer is"
ANSWER_TRIGGERS_BY_TYPE = {
    "number": "Therefore, the answer (arabic numerals) is",
    "choice": "Therefore, among the answer choices, the answer is",
    "yes_no": "Therefore, the answer (Yes or No) is",
    "text": ANSWER_TRIGGER,
}
ANSWER_TRIGGERS = tuple(dict.fromkeys([ANSWER_TRIGGER, *ANSWER_TRIGGERS_BY_TYPE.values()]))
INSTRUCTIONS_END = "\n\n"  # between a custom task's instructions and the question


@dataclass(frozen=True)
class PromptStyle:
    instructions: str = ""
    answer_trigger: str = ANSWER_TRIGGER

    def rationale(self, question: str) -> str:
        head = f"{self.instructions.strip()}{INSTRUCTIONS_END}" if self.instructions.strip() else ""
        return f"{head}Q: {question}\nA: {RATIONALE_TRIGGER}"

    def answer(self, question: str, rationale: str) -> str:
        """Step 2 continues step 1 after the rationale, exactly as the teacher produced it."""
        return f"{self.rationale(question)}{rationale}\n{self.answer_trigger}"


PAPER_STYLE = PromptStyle()


def prompt_style(task) -> PromptStyle:
    """The paper's prompts, or a custom task's: its instructions and its answer type's trigger
    (``task`` is the config's task section)."""
    if task.name != "custom":
        return PAPER_STYLE
    return PromptStyle(task.instructions or "", ANSWER_TRIGGERS_BY_TYPE[task.answer_type])


def chat_messages(prompt: str) -> list[dict]:
    """A prompt as a chat teacher gets it: a custom task's instructions as the system message, the rest
    as the user's. The paper's prompts start with the question ("Q: "); only instructions come before it."""
    marker = f"{INSTRUCTIONS_END}Q: "
    if prompt.startswith("Q: ") or marker not in prompt:
        return [{"role": "user", "content": prompt}]
    instructions, question = prompt.split(marker, 1)
    return [{"role": "system", "content": instructions}, {"role": "user", "content": f"Q: {question}"}]


def rationale_prompt(question: str) -> str:
    return PAPER_STYLE.rationale(question)


def answer_prompt(question: str, rationale: str) -> str:
    return PAPER_STYLE.answer(question, rationale)
