"""Answer filtering and the run's statistics: plain functions over the per-question outcomes."""

from __future__ import annotations

from collections import Counter

from rt_ray.teacher.accounting import CallStats


def question_fields(row: dict) -> dict:
    """What every record of a question carries: the question and its gold answer."""
    return {
        "question_id": row["id"],
        "question": row["question"],
        "answer": row["answer"],
        "answer_type": row["answer_type"],
        "choices": row["choices"],
    }


def sample_records(row: dict, outcome: dict) -> list[dict]:
    """One record per rationale, carrying its question and gold answer."""
    base = question_fields(row)
    return [{**base, **sample} for sample in outcome["samples"]]


def record_line(question: bytes, sample: bytes) -> bytes:
    """A record as an output line, ``orjson.dumps({**question_fields, **sample})``, from the JSON of its
    two parts: compact JSON of a dict is its items' joined by commas, and the parts share no key. So a
    question's fields are serialized and stored once, not once per rationale (at D=8 that halved the
    part files). orjson, not the json module: at a million records it was the callers' largest cost.
    A newline after ``sample`` stays at the end of the line."""
    return question[:-1] + b"," + sample[1:]


def is_kept(record: dict) -> bool:
    """The paper's filter: each sample judged on its own, kept when the teacher's answer is right."""
    return bool(record["correct"])


def keep_correct(records: list[dict]) -> list[dict]:
    return [record for record in records if is_kept(record)]


def word_bigrams(text: str) -> set[tuple[str, str]]:
    words = text.lower().split()
    return set(zip(words, words[1:])) or {(w, "") for w in words}


def rationale_diversity(rationales: list[str]) -> tuple[int, float]:
    """How different a question's D rationales are: (distinct texts, after trimming and lowercasing;
    mean pairwise Jaccard distance of their word-bigram sets: 0 when all read the same, 1 when no
    two share a bigram). Diverse reasoning only adds what the D samples do not repeat."""
    distinct = len({r.strip().lower() for r in rationales})
    sets = [word_bigrams(r) for r in rationales]
    distances = [1 - len(a & b) / len(a | b) if a | b else 0.0 for i, a in enumerate(sets) for b in sets[i + 1 :]]
    return distinct, (sum(distances) / len(distances)) if distances else 0.0


class Tally:
    """The run's counters, added one question at a time, so that a run of any size is summarized in
    one pass over its outputs without holding them (a question's samples all arrive together)."""

    def __init__(self) -> None:
        self.statuses: Counter = Counter()
        self.failures: Counter = Counter()  # failed questions by the teacher's kind of failure
        self.rationales = 0
        self.correct = 0
        self.kept_histogram: Counter = Counter()  # kept rationales per question -> questions
        self.diversity: list[tuple[int, float]] = []  # (distinct, lexical) of the first DIVERSITY_SAMPLE questions

    # Questions whose rationales are compared: a per-task figure settles long before a million
    # questions, and the pairwise comparison is the one per-rationale cost here in Python.
    DIVERSITY_SAMPLE = 5_000

    def wants_rationales(self) -> bool:
        return len(self.diversity) < self.DIVERSITY_SAMPLE

    def add_rationales(self, rationales: list[str]) -> None:
        if len(rationales) > 1 and self.wants_rationales():
            self.diversity.append(rationale_diversity(rationales))

    def add_question(self, status: str, rationales: int, kept: int, failure: str = "") -> None:
        self.statuses[status] += 1
        if status == "failed":
            self.failures[failure or "unrecorded"] += 1  # "unrecorded": a part written before kinds were kept
        self.rationales += rationales
        self.correct += kept
        if kept:
            self.kept_histogram[kept] += 1

    def stats(self, totals: CallStats, degree: int, wall_s: float) -> dict:
        questions = sum(self.statuses.values())
        answered = self.statuses.get("ok", 0)
        status = "complete"
        if self.statuses.get("budget"):
            status = "stopped_budget"
        elif self.statuses.get("failed"):
            status = "complete_with_failures"
        return {
            "status": status,
            "degree": degree,
            "questions": questions,
            "questions_answered": answered,
            "questions_failed": self.statuses.get("failed", 0),
            # Every failure is the teacher's (a fault in rt-ray fails the run instead): how each failed.
            "questions_failed_by_kind": dict(sorted(self.failures.items())),
            "questions_not_sent_budget": self.statuses.get("budget", 0),
            "rationales": self.rationales,
            "rationales_kept": self.correct,
            "teacher_accuracy": (self.correct / self.rationales) if self.rationales else 0.0,
            "yield_per_question": (self.correct / answered) if answered else 0.0,
            "questions_with_a_kept_rationale": sum(self.kept_histogram.values()),
            "kept_per_question_histogram": dict(sorted(self.kept_histogram.items())),
            **self.diversity_stats(),
            "requests_sent": totals.requests,
            "prompts_sent": totals.prompts_sent,
            "requests_per_question": round(totals.requests / questions, 3) if questions else 0.0,
            "cache_hits": totals.cache_hits,
            "retries": totals.retries,
            "failed_requests": totals.failed_requests,
            "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "cost_usd": round(totals.cost_usd, 6),
            "cost_per_kept_rationale_usd": round(totals.cost_usd / self.correct, 8) if self.correct else None,
            "wall_s": round(wall_s, 3),
        }

    def diversity_stats(self) -> dict:
        if not self.diversity:
            return {}
        count = len(self.diversity)
        return {
            "diversity_questions": count,
            "distinct_rationales_per_question": round(sum(d for d, _ in self.diversity) / count, 3),
            "rationale_lexical_diversity": round(sum(x for _, x in self.diversity) / count, 4),
        }
