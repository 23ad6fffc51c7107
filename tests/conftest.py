"""Shared fixtures: offline hub settings, the tiny trained test models and an lm-eval runner on them."""

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


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    from lm_eval_noise import tasks_dir

    return TaskManager(include_path=str(tasks_dir()), include_defaults=False)


@pytest.fixture(scope="module")
def evaluate(tiny_model, task_manager):
    """Run tasks and return {task: [K responses per doc, in doc order]} plus the raw results."""
    import lm_eval

    def run(model_args: str = "", tasks=("noise_demo",), batch_size=1, model="hf-noisy", limit=4, toks=10, **kw):
        args = f"pretrained={tiny_model},device=cpu,dtype=float32" + (f",{model_args}" if model_args else "")
        results = lm_eval.simple_evaluate(
            model=model, model_args=args, tasks=list(tasks), task_manager=task_manager, batch_size=batch_size,
            log_samples=True, limit=limit, gen_kwargs=f"max_gen_toks={toks}", bootstrap_iters=0, **kw,
        )
        samples = {
            task: [s["resps"][0] for s in sorted(rows, key=lambda s: s["doc_id"])]
            for task, rows in results["samples"].items()
        }
        return samples, results

    return run


@pytest.fixture(scope="module")
def sandbox():
    """A sandbox with the code tasks' 3 s per-test budget (test_sandbox.py defines its own, per mode)."""
    from lm_eval_noise.sandbox import Limits, Sandbox

    with Sandbox(Limits(timeout_s=3.0)) as sb:
        yield sb
