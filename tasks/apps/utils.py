"""Hooks for the APPS tasks (implemented in lm_eval_noise.execution.lm_tasks)."""

from lm_eval_noise.execution.lm_tasks import (
    doc_to_text_apps,
    load_apps,
    load_apps_fixture,
    process_results,
    run_apps,
)

__all__ = ["doc_to_text_apps", "load_apps", "load_apps_fixture", "process_results", "run_apps"]
