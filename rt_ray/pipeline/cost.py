"""The cost case: what an answer from the distilled student costs against one from the teacher, and after
how many answers the distillation has paid for itself. Pure arithmetic on measured figures.

    case = cost_case(teacher_test, student, distillation)
    case.break_even_answers    # None when the student is not cheaper per answer

- The teacher answers the test questions greedily (one rationale and its answer each); its cost per
  answer is what those calls cost at ``teacher.prices``, from the tokens it used.
- The served student's cost per answer is the machine's price (``serve.usd_per_hour``) over the answers
  a replica gave per hour in a load probe at ``serve.max_batch_size`` concurrent requests.
- Distilling costs once: the teacher's spend on the training rationales plus the training time at
  ``train.usd_per_hour`` (every sweep trial's time, since all of them were paid for).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TeacherOnTest:
    accuracy: float
    questions: int
    cost_usd: float


@dataclass(frozen=True)
class ServedStudent:
    accuracy: float
    requests: int
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    usd_per_hour: float


@dataclass(frozen=True)
class Distillation:
    teacher_usd: float  # the training rationales
    training_s: float
    usd_per_hour: float


@dataclass(frozen=True)
class CostCase:
    teacher: TeacherOnTest
    student: ServedStudent
    distillation: Distillation

    @property
    def teacher_usd_per_1k(self) -> float:
        return 1000 * self.teacher.cost_usd / max(self.teacher.questions, 1)

    @property
    def student_usd_per_1k(self) -> float:
        seconds_per_answer = 1 / self.student.requests_per_s if self.student.requests_per_s > 0 else float("inf")
        return 1000 * seconds_per_answer * self.student.usd_per_hour / 3600

    @property
    def distill_usd(self) -> float:
        return self.distillation.teacher_usd + self.distillation.training_s * self.distillation.usd_per_hour / 3600

    @property
    def break_even_answers(self) -> float | None:
        return break_even(self.distill_usd, self.teacher_usd_per_1k / 1000, self.student_usd_per_1k / 1000)

    def sentences(self) -> list[str]:
        lines = []
        if self.break_even_answers is None:
            lines.append("The student costs no less per answer than the teacher here, so distilling never pays for itself.")
        else:
            saving = self.teacher_usd_per_1k / max(self.student_usd_per_1k, 1e-12)
            lines.append(f"An answer from the student costs {saving:,.0f}x less than one from the teacher; the distillation "
                         f"(${self.distill_usd:.4g}) has paid for itself after {self.break_even_answers:,.0f} answers.")  # fmt: skip
        gap = self.teacher.accuracy - self.student.accuracy
        if gap > 0:
            lines.append(f"The student is {100 * gap:.1f} points less accurate than the teacher on the test split "
                         f"({self.student.accuracy:.3f} against {self.teacher.accuracy:.3f}).")  # fmt: skip
        return lines

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, teacher, student) for the report's table."""
        s = self.student
        return [
            ("test accuracy", f"{self.teacher.accuracy:.3f}", f"{s.accuracy:.3f}"),
            ("cost per 1,000 answers", f"${self.teacher_usd_per_1k:.4g}", f"${self.student_usd_per_1k:.4g}"),
            ("measured on", f"{self.teacher.questions} test questions, greedy",
             f"{s.requests} requests at {s.concurrency} concurrent: {s.requests_per_s:.1f}/s, p50 {s.p50_ms:.0f} ms, "
             f"p99 {s.p99_ms:.0f} ms, ${s.usd_per_hour}/h"),
            ("one-off distillation", f"${self.distill_usd:.4g}: rationales ${self.distillation.teacher_usd:.4g} + "
             f"{self.distillation.training_s:.0f} s training at ${self.distillation.usd_per_hour}/h", ""),
            ("break-even", "", "never" if self.break_even_answers is None else f"{self.break_even_answers:,.0f} answers"),
        ]  # fmt: skip

    def as_dict(self) -> dict:
        return {**asdict(self), "teacher_usd_per_1k_answers": self.teacher_usd_per_1k, "student_usd_per_1k_answers":
                self.student_usd_per_1k, "distill_usd": self.distill_usd, "break_even_answers": self.break_even_answers,
                "sentences": self.sentences()}  # fmt: skip


def break_even(distill_usd: float, teacher_per_answer: float, student_per_answer: float) -> float | None:
    """Answers after which the student's total (distillation + its answers) is below the teacher's; None if never."""
    saved_per_answer = teacher_per_answer - student_per_answer
    return distill_usd / saved_per_answer if saved_per_answer > 0 else None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of measured values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, math.ceil(share * len(ordered)))) - 1]
