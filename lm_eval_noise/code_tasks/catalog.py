"""The datasets `score-code` scores: their NAME[:DIFFICULTY] specs, and each one's problems and job builder."""

from __future__ import annotations

from typing import Any

from lm_eval_noise.code_tasks import livecodebench, mbpp
from lm_eval_noise.code_tasks.apps import APPS_DIFFICULTIES, apps_job, fixture_path, load_apps_dataset
from lm_eval_noise.code_tasks.data import extract_code
from lm_eval_noise.code_tasks.humaneval import humaneval_job, humaneval_problems

DATASETS = ("humaneval", "apps", "apps-fixture", "livecodebench", "livecodebench-fixture", "mbpp", "mbpp-fixture",
            "mbpp-plus", "mbpp-plus-fixture")
_LEVELS = {"apps": APPS_DIFFICULTIES, "apps-fixture": APPS_DIFFICULTIES,
           "livecodebench": livecodebench.DIFFICULTIES, "livecodebench-fixture": livecodebench.DIFFICULTIES}
DATASET_HELP = ("humaneval | apps[:introductory|interview|competition] | livecodebench[:easy|medium|hard] | "
                "mbpp | mbpp-plus (and apps-fixture, livecodebench-fixture, mbpp-fixture, mbpp-plus-fixture)")


def parse_dataset(dataset: str) -> tuple[str, str | None]:
    """(name, difficulty or None) of a dataset spec NAME[:DIFFICULTY]; ValueError naming the valid ones."""
    name, _, difficulty = dataset.partition(":")
    if name not in DATASETS or (difficulty and difficulty not in _LEVELS.get(name, ())):
        raise ValueError(f"dataset {dataset!r}: must be {DATASET_HELP}")
    return name, difficulty or None


def problems_for(dataset: str, apps_path: str | None = None, **options) -> tuple[dict[str, dict], Any]:
    """{task_id: problem} and a job builder (problem, completion) -> job, for `dataset` (see
    parse_dataset). `options`: livecodebench_path, release_version, start_date, end_date (LiveCodeBench),
    mbpp_path (MBPP, or the EvalPlus file for mbpp-plus)."""
    name, difficulty = parse_dataset(dataset)
    if name == "humaneval":
        return {p["task_id"]: p for p in humaneval_problems()}, humaneval_job
    if name.startswith("livecodebench"):
        path = str(livecodebench.fixture_path()) if name.endswith("-fixture") else options.get("livecodebench_path")
        rows = livecodebench.load_problems(path, options.get("release_version") or livecodebench.DEFAULT_RELEASE,
                                           options.get("start_date"), options.get("end_date"), difficulty)
        return ({str(r["question_id"]): r for r in rows},
                lambda row, completion: livecodebench.job(row, extract_code(completion)))
    if name.startswith("mbpp"):
        fixture, load = name.endswith("-fixture"), (mbpp.load_plus_problems if "plus" in name else mbpp.load_problems)
        rows = load(None if fixture else options.get("mbpp_path"), fixture=fixture)
        return ({str(r["task_id"]): r for r in rows}, lambda row, completion: mbpp.job(row, extract_code(completion)))
    path = str(fixture_path()) if name == "apps-fixture" else apps_path
    rows = load_apps_dataset(path, difficulty)
    return ({str(r["problem_id"]): r for r in rows},
            lambda row, completion: apps_job(row, extract_code(completion)))
