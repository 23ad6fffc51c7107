"""Hooks for the APPS tasks (implemented in lm_eval_noise.code_tasks.lm_tasks)."""

from lm_eval_noise.code_tasks.lm_tasks import (
    doc_to_text_apps,
    load_apps,
    load_apps_fixture,
    process_results,
    run_apps,
)
from lm_eval_noise.metrics.measured import count

__all__ = ["count", "doc_to_text_apps", "load_apps", "load_apps_fixture", "process_results", "run_apps"]
