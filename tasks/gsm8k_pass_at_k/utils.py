"""GSM8K with K samples per question: first-sample accuracy, pass@k, majority vote and the
diversity of the final answers (the study's GSM8K setting; README, The study).

The K responses of one question are kept by the custom filter (lm-eval's default keeps only the
first), and `process_results` scores them together; lm-eval averages over questions.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path

import datasets

from lm_eval_noise.metrics import pass_at_k
from lm_eval_noise.task_utils import jsonl_splits, keep_all, responses  # noqa: F401 (keep_all: the YAML's filter)

FIXTURE_DIR = Path(__file__).parent
PASS_AT = (1, 5, 10)

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
# Tried in order; the first that matches gives the answer (lm-eval's gsm8k strict "#### N",
# gsm8k-cot's "The answer is N", a LaTeX \boxed{N}); else the last number in the text.
_ANSWER_PATTERNS = (
    re.compile(rf"####\s*({_NUMBER})"),
    re.compile(rf"[Tt]he (?:final )?answer is:?\s*({_NUMBER})"),
    re.compile(rf"\\boxed\{{\s*({_NUMBER})\s*\}}"),
)
_LAST_NUMBER = re.compile(_NUMBER)


def load_fixture(**metadata) -> datasets.DatasetDict:
    """The shipped offline fixture: 20 GSM8K-style test questions and 5 few-shot (train) examples."""
    return jsonl_splits(train=FIXTURE_DIR / "fixture_train.jsonl", test=FIXTURE_DIR / "fixture_test.jsonl")


def normalize_number(text: str | None) -> str | None:
    """Canonical form of a numeric answer ("$1,200.00" -> "1200", "0.50" -> "0.5"); None if not a number."""
    if text is None:
        return None
    cleaned = text.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_answer(text: str) -> str | None:
    """The final numeric answer of a response, normalised; None when it holds no number."""
    for pattern in _ANSWER_PATTERNS:
        match = pattern.search(text)
        if match:
            answer = normalize_number(match.group(1))
            if answer is not None:
                return answer
    numbers = _LAST_NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def target_answer(doc: dict) -> str | None:
    """The reference answer: what follows "####" in the GSM8K `answer` field, normalised."""
    return normalize_number(doc["answer"].split("####")[-1].strip())


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Correctness and answer diversity of the K samples for one question.

    pass@k is the unbiased estimator over the K samples (NaN when k > K). Majority vote counts
    only samples with an extracted answer (ties: the answer seen first); answer diversity is the
    number of distinct extracted answers / K.
    """
    samples = responses(results)
    k_samples = len(samples)
    target = target_answer(doc)
    answers = [extract_answer(s) for s in samples]
    correct = [a is not None and a == target for a in answers]
    n_correct = sum(correct)
    votes = Counter(a for a in answers if a is not None)
    majority = votes.most_common(1)[0][0] if votes else None
    out = {"acc_first": float(correct[0]) if samples else 0.0}
    for k in PASS_AT:
        out[f"pass@{k}"] = pass_at_k(k_samples, n_correct, k) if k <= k_samples else math.nan
    out["maj_acc"] = float(majority is not None and majority == target)
    out["answer_diversity"] = len(votes) / k_samples if k_samples else 0.0
    return out
