"""Hooks for the MBPP and MBPP+ tasks (implemented in lm_eval_noise.code_tasks.lm_tasks)."""

from lm_eval_noise.code_tasks.lm_tasks import (
    doc_to_text_mbpp,
    doc_to_text_mbpp_chat,
    load_mbpp,
    load_mbpp_fixture,
    load_mbpp_plus,
    load_mbpp_plus_fixture,
    process_results,
    run_mbpp,
    run_mbpp_plus,
)
from lm_eval_noise.metrics.measured import count

__all__ = ["count", "doc_to_text_mbpp", "doc_to_text_mbpp_chat", "load_mbpp", "load_mbpp_fixture", "load_mbpp_plus",
           "load_mbpp_plus_fixture", "process_results", "run_mbpp",
           "run_mbpp_plus"]
