"""Start-up cost of the registration hook that `lm_eval_noise.pth` imports in every interpreter."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time

NAME = "startup"


def _hook_import_us() -> float:
    """The hook's own import time as `python -X importtime` reports it (microseconds)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True).stderr
    match = re.search(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+lm_eval_noise_hook", err)
    if not match:
        raise RuntimeError("lm_eval_noise_hook was not imported at start-up: is the package installed?")
    return float(match.group(2))


def _startup_ms(flags: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *flags, "-c", "pass"], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(quick: bool = False, **_) -> dict:
    """Hook import time against a bare interpreter start."""
    runs = 5 if quick else 20
    hook_us = statistics.median(_hook_import_us() for _ in range(runs))
    total_ms = _startup_ms([], runs)
    rows = [{"case": "hook import vs interpreter start", "ours": hook_us / 1000, "reference": total_ms,
             "ratio": total_ms / (hook_us / 1000), "unit": "ms", "target": None}]
    note = (f"median of {runs}: importing lm_eval_noise_hook at start-up costs {hook_us:.0f} µs of a "
            f"{total_ms:.1f} ms interpreter start (ratio = start / hook)")
    return {"name": NAME, "rows": rows, "note": note}


if __name__ == "__main__":
    print(run()["note"])
