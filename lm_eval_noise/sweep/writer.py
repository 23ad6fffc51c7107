"""Atomic lm-eval-format output for one sweep evaluation, and finding the ones already finished.

Files are lm-eval's own (`results_<date_id>.json` + `samples_<task>_<date_id>.jsonl`, written by its
EvaluationTracker) built in a hidden temp folder beside their destination, then moved in with
os.replace: samples first, results JSON last, so a results file means the pair is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_eval_noise.results.files import file_date_id

TMP_PREFIX = ".sweep-tmp-"  # hidden: the leaderboard skips dot-folders


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them to the usual handlers.

    A signal mask would not do: the kernel hands a process-directed signal to any thread that does not
    block it (torch's worker threads), and Python then runs the handler in the main thread anyway.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    pending: list[signal.Signals] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signal.Signals(signum)))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


def write_evaluation(folder: Path, results: dict[str, Any], samples: dict[str, list], tracker: Any) -> Path:
    """Write one evaluation's results JSON and samples JSONL atomically into `folder`; return the results path."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=folder))
    try:
        tracker.output_path = str(tmp)
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
        written_results = sorted(tmp.rglob("results_*.json"))
        if len(written_results) != 1:  # EvaluationTracker logs and swallows its own write errors
            raise OSError(f"lm-eval's EvaluationTracker did not write a results file under {tmp}")
        staged = sorted(tmp.rglob("samples_*.jsonl")) + written_results
        for path in staged:
            _fsync(path)
        # Ctrl-C / SIGTERM wait until both files are in place, so neither leaves a lone samples file.
        with _signals_deferred():
            for path in staged:
                os.replace(path, folder / path.name)
            _fsync(folder)
        return folder / written_results[0].name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def finished(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(path, results["config"]["sweep"]) of every complete sweep results JSON in `folder`."""
    out = []
    for path in sorted(folder.glob("results_*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        sweep = data.get("config", {}).get("sweep") if isinstance(data, dict) else None
        if isinstance(sweep, dict) and isinstance(data.get("results"), dict):
            out.append((path, sweep))
    return out


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove what a killed run left: temp folders, and samples files whose results file never landed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(TMP_PREFIX + "*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    for samples in folder.glob("samples_*.jsonl"):
        if not (folder / f"results_{file_date_id(samples.name)}.json").exists():
            samples.unlink(missing_ok=True)
            removed.append(samples)
    return removed
