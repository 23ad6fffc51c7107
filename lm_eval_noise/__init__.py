"""Inference-time noise for frozen LLMs, evaluated with lm-evaluation-harness."""

from pathlib import Path

__version__ = "0.1.0"


def tasks_dir() -> Path:
    """The folder holding this project's task YAMLs (installed copy, else the checkout's)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "tasks", here.parent / "tasks"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("lm_eval_noise task folder not found")
