"""Shared fixtures: offline hub settings and the tiny trained test models."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from lm_eval_noise.tiny import ensure_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """Path of the tiny trained Llama (built once, cached)."""
    return ensure_tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_qwen2() -> str:
    """Path of the tiny trained Qwen2, a second architecture."""
    return ensure_tiny_model("qwen2")
