"""Hooks for the LiveCodeBench tasks (implemented in lm_eval_noise.code_tasks.lm_tasks)."""

from lm_eval_noise.code_tasks.lm_tasks import (
    doc_to_text_livecodebench,
    load_livecodebench,
    load_livecodebench_fixture,
    process_results,
    run_livecodebench,
)
from lm_eval_noise.metrics.measured import count

__all__ = ["count", "doc_to_text_livecodebench", "load_livecodebench", "load_livecodebench_fixture",
           "process_results", "run_livecodebench"]
