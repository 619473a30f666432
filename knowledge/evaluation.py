"""Retrieval quality on our own question set: recall@1, recall@5 and MRR per ranking mode.

Lives in the package (not only in bench/) because the test suite asserts the same numbers the benchmark
prints, so the threshold in the test and the figure in the report can never be computed two different ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from knowledge.search import KnowledgeBase

QUESTIONS_PATH = Path(__file__).resolve().parent / "questions.yaml"
Mode = Literal["lexical", "vector", "hybrid"]


class Question(BaseModel):
    q: str = Field(min_length=1)
    ids: list[str] = Field(min_length=1)


class Metrics(BaseModel):
    mode: Mode
    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr: float
    misses: list[str] = Field(default_factory=list)  # questions with no relevant passage in the top 5


def load_questions(path: Path = QUESTIONS_PATH) -> list[Question]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [Question.model_validate(item) for item in data.get("questions", [])]


def evaluate(kb: KnowledgeBase, questions: list[Question], mode: Mode, depth: int = 10) -> Metrics:
    hits1 = hits5 = 0
    reciprocal = 0.0
    misses: list[str] = []
    for question in questions:
        ranked = [p.id for p in kb.retrieve(question.q, depth, mode)]
        relevant = set(question.ids)
        rank = next((i for i, pid in enumerate(ranked, start=1) if pid in relevant), None)
        if rank is not None:
            reciprocal += 1.0 / rank
            hits1 += rank == 1
            hits5 += rank <= 5
        if rank is None or rank > 5:
            misses.append(f"{question.q} -> want {question.ids}, got {ranked[:5]}")
    n = max(1, len(questions))
    return Metrics(
        mode=mode,
        questions=len(questions),
        recall_at_1=hits1 / n,
        recall_at_5=hits5 / n,
        mrr=reciprocal / n,
        misses=misses,
    )
