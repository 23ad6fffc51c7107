"""The code sandbox: runs untrusted programs in isolated, warm servers and judges them from outside.

Benchmark-agnostic: a job names a program and how to check it (`check_job`, `call_job`, `stdio_job`,
`script_job`); the benchmarks that build jobs live in `lm_eval_noise.code_tasks`.
"""

from lm_eval_noise.sandbox.judge import VERDICTS, ExecResult
from lm_eval_noise.sandbox.runner import (
    ISOLATION_MODES,
    Isolation,
    Limits,
    Sandbox,
    SandboxBroken,
    call_job,
    check_job,
    detect_isolation,
    script_job,
    shared_sandbox,
    stdio_job,
)

__all__ = ["ISOLATION_MODES", "VERDICTS", "ExecResult", "Isolation", "Limits", "Sandbox", "SandboxBroken",
           "call_job", "check_job", "detect_isolation", "script_job", "shared_sandbox", "stdio_job"]
