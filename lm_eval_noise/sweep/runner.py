"""Run a sweep: one model load and one task index, then every (method, seed, task) evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

from lm_eval_noise.sweep.config import SweepMethod, SweepConfig, SweepConfigError, check_model, check_tasks
from lm_eval_noise.sweep.writer import clean_leftovers, finished, write_evaluation


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One (method, seed, task) of the sweep and, when already finished, its results file."""

    method: SweepMethod
    seed: int
    task: str
    folder: Path
    fingerprint: str
    done: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.method.name} seed={self.seed} {self.task}"


@dataclasses.dataclass
class Summary:
    """What a sweep did."""

    ran: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    model_loads: int = 0


def output_folder(config: SweepConfig, method: SweepMethod, seed: int) -> Path:
    """Where one method and seed's files go: <output_dir>/<method>/seed-<N>/."""
    return config.output_dir / method.name / f"seed-{seed}"


def plan(config: SweepConfig) -> list[Evaluation]:
    """Every evaluation in run order (method, seed, task), with the results file of those already done.

    A results file for the same evaluation made with other settings (limit, model, gen_kwargs...) is
    an error rather than a silent skip or a second result beside it.
    """
    out = []
    for method in config.methods:
        for seed in config.seeds:
            folder = output_folder(config, method, seed)
            records = finished(folder)
            for task in config.tasks:
                fingerprint = config.fingerprint(method, seed, task)
                same = [
                    (path, rec) for path, rec in records
                    if (rec.get("method"), rec.get("seed"), rec.get("task")) == (method.name, seed, task)
                ]
                done = [path for path, rec in same if rec.get("fingerprint") == fingerprint]
                if same and not done:
                    raise SweepConfigError(
                        f"{same[0][0]} holds {method.name} seed={seed} {task} run with other settings than this "
                        "config's (model, model_args, limit, noise or gen_kwargs changed); use another output_dir "
                        "or remove that file"
                    )
                out.append(Evaluation(method, seed, task, folder, fingerprint, done[0] if done else None))
    return out


@contextlib.contextmanager
def _quiet_git() -> Iterator[None]:
    """lm-eval records `git describe` for every evaluation and lets git print "fatal: not a git repository"
    outside a checkout, once per evaluation of a sweep: ask git once, quietly, and record that answer."""
    import lm_eval.evaluator as evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    try:
        found = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=False)
        commit = found.stdout.strip() if found.returncode == 0 else get_commit_from_path(os.getcwd())
    except OSError:  # no git installed
        commit = get_commit_from_path(os.getcwd())
    original = evaluator.get_git_commit_hash
    evaluator.get_git_commit_hash = lambda: commit
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


def _agree(lm: Any, pending: list[int]) -> list[int]:
    """Rank 0's list of pending evaluations on every rank, so all ranks run the same loop."""
    if lm.world_size <= 1:
        return pending
    import torch.distributed as dist

    box = [pending]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _evaluate(config: SweepConfig, lm: Any, task_manager: Any, item: Evaluation) -> tuple[dict, dict, Any] | None:
    """Evaluate one (method, seed, task); lm-eval's results and samples on rank 0, None elsewhere."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    model_args = config.run_model_args(item.method, item.seed)
    gen_kwargs = config.gen_kwargs_for(item.method)
    tracker = EvaluationTracker()  # starts the clock recorded as total_evaluation_time_seconds
    lm.set_noise(noise_seed=item.seed, **item.method.noise)
    results = lm_eval.simple_evaluate(
        model=lm,
        model_args=model_args,
        tasks=[item.task],
        task_manager=task_manager,
        batch_size=config.batch_size,
        limit=config.limit,
        num_fewshot=config.num_fewshot,
        gen_kwargs=dict(gen_kwargs) or None,
        apply_chat_template=config.apply_chat_template,
        confirm_run_unsafe_code=config.confirm_run_unsafe_code,
        log_samples=True,
        bootstrap_iters=BOOTSTRAP_ITERS,
    )
    if results is None:
        return None
    tracker.general_config_tracker.log_experiment_args(
        model_source=config.model,
        model_args=model_args,
        system_instruction=None,
        chat_template=lm.chat_template(config.apply_chat_template) if config.apply_chat_template else None,
        fewshot_as_multiturn=True,
    )
    samples = results.pop("samples")
    results["config"].update(
        model=config.model,
        method=item.method.name,
        sweep={
            "name": config.name, "method": item.method.name, "seed": item.seed, "task": item.task,
            "noise": item.method.noise, "gen_kwargs": gen_kwargs, "fingerprint": item.fingerprint,
        },
    )
    return results, samples, tracker


# lm-eval bootstraps the stderr of NaN-aware means (the diversity metrics); its default of 100,000
# resamples in a process pool costs seconds per metric and forks a process holding the model.
# 1,000 resamples in-process estimate a standard error to within a few percent.
BOOTSTRAP_ITERS = 1000


def _skip_line(i: int, total: int, item: Evaluation) -> str:
    return f"sweep [{i + 1}/{total}] skip  {item.label} (done: {item.done})"


def run_sweep(config: SweepConfig, dry_run: bool = False, out: TextIO = sys.stdout) -> Summary:
    """Validate, plan and run (or with dry_run, print) a sweep; finished evaluations are skipped."""
    from lm_eval.tasks import TaskManager
    from tqdm import tqdm

    model_cls = check_model(config)
    task_manager = TaskManager(include_path=config.include_path, include_defaults=config.include_defaults)
    check_tasks(config, task_manager)
    evaluations = plan(config)
    summary = Summary()
    total = len(evaluations)
    if dry_run:
        for i, item in enumerate(evaluations):
            line = _skip_line(i, total, item) if item.done else f"sweep [{i + 1}/{total}] run   {item.label} -> {item.folder}"
            print(line, file=out)
        print(f"sweep: {sum(e.done is None for e in evaluations)} to run, "
              f"{sum(e.done is not None for e in evaluations)} done, of {total}", file=out)
        return summary
    to_run = [i for i, item in enumerate(evaluations) if item.done is None]
    if not to_run:
        for i, item in enumerate(evaluations):
            print(_skip_line(i, total, item), file=out)
        summary.skipped = [item.done for item in evaluations if item.done is not None]
        return summary

    print(f"sweep: loading {config.model} (pretrained={config.model_args['pretrained']}) once "
          f"for {len(to_run)} of {total} evaluations", file=out, flush=True)
    lm = model_cls.create_from_arg_obj(config.model_args, {"batch_size": config.batch_size})
    summary.model_loads += 1
    pending = set(_agree(lm, to_run))
    main_rank = lm.rank == 0
    if main_rank:
        for folder in {evaluations[i].folder for i in pending}:
            clean_leftovers(folder)
    # lm-eval's switch to bootstrap in this process, for the sweep only (a user's own setting wins).
    in_process = {} if "DISABLE_MULTIPROC" in os.environ else {"DISABLE_MULTIPROC": "1"}
    with mock.patch.dict(os.environ, in_process), _quiet_git(), tqdm(total=total, desc="sweep", disable=not main_rank, file=sys.stderr) as bar:
        for i, item in enumerate(evaluations):
            if i not in pending:
                if main_rank:
                    bar.write(_skip_line(i, total, item), file=out)
                if item.done is not None:
                    summary.skipped.append(item.done)
                bar.update()
                continue
            start = time.perf_counter()
            evaluated = _evaluate(config, lm, task_manager, item)
            if evaluated is not None and main_rank:
                path = write_evaluation(item.folder, *evaluated)
                summary.ran.append(path)
                bar.write(
                    f"sweep [{i + 1}/{total}] ran   {item.label} -> {path} ({time.perf_counter() - start:.1f} s)",
                    file=out,
                )
            bar.update()
    return summary
