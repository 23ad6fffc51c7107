"""Problem generation (the study's Experiment 2; README, The study): the model invents a new Python problem as a
function signature with a docstring; the K repeats of each prompt are scored together.

Each prompt ends with `def`, so a completion reads `prefix + response` (doc field `prefix`).
A response holding a Markdown code fence (chat models) is read from the fence instead.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from pathlib import Path

import datasets

from lm_eval_noise.metrics import compression_ratio, distinct_n, self_bleu, semantic_metrics
from lm_eval_noise.metrics.embedder import with_embedder
from lm_eval_noise.metrics.measured import count, with_measured  # noqa: F401 (count: the YAML's aggregation)
from lm_eval_noise.task_utils import jsonl_splits, keep_all, responses  # noqa: F401 (keep_all: the YAML's filter)

PROMPTS_FILE = Path(__file__).with_name("prompts.jsonl")
MAY_BE_UNMEASURABLE = (
    "unique_names", "unique_signatures", "docstring_distinct_2", "docstring_self_bleu",
    "semantic_diversity", "semantic_vendi", "compression_ratio",
)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)


def load_prompts(prompts_file: str | None = None, embedder: str | None = None, **metadata) -> datasets.DatasetDict:
    """The embedded prompt variants as a one-split ("test") DatasetDict.

    `--metadata '{"prompts_file": "my.jsonl"}'` swaps in another JSONL (fields `prompt` and `prefix`);
    `"embedder"` names the sentence-transformers model of the semantic metrics.
    """
    return with_embedder(jsonl_splits(test=prompts_file or PROMPTS_FILE), embedder)


def sample_code(response: str, prefix: str = "def") -> str:
    """The Python source of one sample: a fenced block's body if there is one, else prefix + response."""
    fenced = _FENCE.search(response)
    if fenced:
        return fenced.group(1)
    return prefix + response


def parse_problem(code: str) -> dict | None:
    """Name, signature and docstring of a valid problem, else None.

    Valid: the code parses, its top level defines exactly one function and no class, and that
    function has a non-empty docstring. Other top-level statements (imports, example calls) are
    allowed; an implementation below the docstring is allowed too.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return None
    funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(funcs) != 1 or any(isinstance(n, ast.ClassDef) for n in tree.body):
        return None
    func = funcs[0]
    docstring = ast.get_docstring(func)
    if not docstring or not docstring.strip():
        return None
    signature = f"{func.name}({ast.unparse(func.args)})"
    if func.returns is not None:
        signature += f" -> {ast.unparse(func.returns)}"
    return {"name": func.name, "signature": signature, "docstring": docstring}


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Validity and diversity of the K problems generated for one prompt.

    `valid` is over all K samples; the other metrics are over the valid samples only (the
    semantic ones and `compression_ratio` over their docstrings, the problem statements) and are
    NaN (not measurable) with fewer than two valid samples, since one problem cannot repeat
    another: otherwise the method with the most invalid output would win those columns. The
    task skips NaN in the mean and counts the measured prompts in `<metric>_measured`.
    """
    samples = responses(results)
    prefix = doc.get("prefix") or ""
    problems = [p for p in (parse_problem(sample_code(r, prefix)) for r in samples) if p is not None]
    n_valid = len(problems)
    docstrings = [p["docstring"] for p in problems]
    enough = n_valid >= 2
    values = {
        "valid": n_valid / len(samples) if samples else 0.0,
        "unique_names": len({p["name"] for p in problems}) / n_valid if enough else math.nan,
        "unique_signatures": len({p["signature"] for p in problems}) / n_valid if enough else math.nan,
        "docstring_distinct_2": distinct_n(docstrings, 2),
        "docstring_self_bleu": self_bleu(docstrings, method="max"),
        **semantic_metrics(docstrings, model=doc.get("embedder")),
        "compression_ratio": compression_ratio(docstrings),
    }
    return with_measured(values, MAY_BE_UNMEASURABLE)
