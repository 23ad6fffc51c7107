"""Leaderboard records: one JSON per (model, method, task), derived from an lm-eval results JSON.

Read from a file, a task whose samples file beside it carries hf-noisy's clean perplexities also
gets metric "clean_ppl,none" (see results/samples.py); everything else comes from the results JSON alone.

In the spirit of the Open LLM Leaderboard's result files (model identity, configuration, metrics
with stderr, versions, date), with the resolved method (noise + decoding) added:

    {
      "schema": "lm_eval_noise.leaderboard/1",
      "model": {"name", "short_name", "name_sanitized", "source", "args", "dtype", "revision", "sha", "num_parameters"},
      "method": {"label", "slug", "kind", "noise": {...} | null, "generation": {...}, "source"},
      "task": {"name", "alias", "version", "output_type", "n_shot", "repeats", "hash", "primary_metric"},
      "metrics": {"pass@5,none": {"metric", "filter", "value", "stderr", "direction"}, ...},
      "n_samples": {"original", "effective"},
      "limit": ..., "seed": {"run", "random", "numpy", "torch", "fewshot", "noise"},
      "versions": {"lm_eval", "transformers", "torch", "task"},
      "date": <UNIX time>, "date_iso": "...",
      "source": {"results_file", "git_hash"}
    }

`write_leaderboard_records` lays them out as `<out>/<model>/<method slug>/<task>.json`, each written
atomically (temp file + os.replace).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lm_eval_noise.leaderboard.directions import results_direction
from lm_eval_noise.leaderboard.method import describe_method
from lm_eval_noise.results import samples
from lm_eval_noise.results.files import ResultsFile, atomic_write_text, iso_date, load_results, run_date
from lm_eval_noise.results.schema import model_info, run_seed, split_metric_key, task_metrics, torch_version
from lm_eval_noise.metrics.measured import measured_of

SCHEMA = "lm_eval_noise.leaderboard/1"


def to_leaderboard_record(results_json: dict[str, Any] | ResultsFile | str | Path, source: str | None = None) -> list[dict]:
    """One record per task (and group) in an lm-eval results JSON (a dict, or a path to one).

    Given a path or ResultsFile, each task's mean clean perplexity is added from its samples file
    when that run logged one (hf-noisy clean_ppl=true with --log_samples).
    """
    if isinstance(results_json, (str, Path)):
        results_json = load_results(results_json)
    results_file = results_json if isinstance(results_json, ResultsFile) else None
    if isinstance(results_json, ResultsFile):
        source = source or str(results_json.path)
        date = results_json.date
        results_json = results_json.data
    else:
        date = run_date(results_json)
    data = results_json
    config = data.get("config") or {}
    model = model_info(data)
    versions = {
        "lm_eval": data.get("lm_eval_version"),
        "transformers": data.get("transformers_version"),
        "torch": torch_version(data),
    }
    records = []
    for task, entry in (data.get("results") or {}).items():
        method = describe_method(data, task)
        task_cfg = (data.get("configs") or {}).get(task) or {}
        metrics = {}
        for key, (value, stderr) in task_metrics(entry).items():
            metric, filt = split_metric_key(key)
            metrics[key] = {
                "metric": metric,
                "filter": filt,
                "value": value,
                "stderr": stderr,
                "direction": results_direction(data, task, metric),
            }
        samples_path = results_file.samples_path(task) if results_file else None
        if samples_path is not None and samples.CLEAN_PPL_KEY not in metrics:
            found = samples.clean_ppl_metric(samples_path)
            if found is not None:
                metrics[samples.CLEAN_PPL_KEY] = {
                    "metric": samples.CLEAN_PPL, "filter": "none", "value": found[0], "stderr": found[1],
                    "direction": results_direction(data, task, samples.CLEAN_PPL),
                }
        n_samples = (data.get("n-samples") or {}).get(task) or {}
        records.append(
            {
                "schema": SCHEMA,
                "model": model,
                "method": method.to_dict(),
                "task": {
                    "name": task,
                    "alias": entry.get("alias", task),
                    "version": (data.get("versions") or {}).get(task),
                    "output_type": task_cfg.get("output_type"),
                    "n_shot": (data.get("n-shot") or {}).get(task),
                    "repeats": task_cfg.get("repeats"),
                    "hash": (data.get("task_hashes") or {}).get(task),
                    "primary_metric": primary_metric(task_cfg, metrics),
                },
                "metrics": metrics,
                "n_samples": {"original": n_samples.get("original"), "effective": n_samples.get("effective")},
                "limit": config.get("limit"),
                "seed": {
                    "run": run_seed(data),
                    "random": config.get("random_seed"),
                    "numpy": config.get("numpy_seed"),
                    "torch": config.get("torch_seed"),
                    "fewshot": config.get("fewshot_seed"),
                    "noise": (method.noise or {}).get("seed"),
                },
                "versions": {**versions, "task": (data.get("versions") or {}).get(task)},
                "date": date,
                "date_iso": iso_date(date),
                "source": {"results_file": source, "git_hash": data.get("git_hash")},
            }
        )
    return records


def primary_metric(task_cfg: dict[str, Any], metrics: dict[str, Any]) -> str | None:
    """The task's headline metric key ("metric,filter"): the first metric its YAML declares in
    metric_list (pass@1 for the code tasks), else the first metric in its results; counts of
    measured prompts (`<metric>_measured`) are never it."""
    declared = [m.get("metric") for m in task_cfg.get("metric_list") or [] if isinstance(m, dict)]
    for name in [*declared, *(split_metric_key(k)[0] for k in metrics)]:
        if not isinstance(name, str) or measured_of(name) is not None:
            continue
        keys = [k for k in metrics if split_metric_key(k)[0] == name]
        if keys:
            return keys[0]
    return None


def record_key(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """Runs with the same key repeat each other: model, method, task and run seed."""
    return record["model"]["name"], record["method"]["label"], record["task"]["name"], str(record["seed"]["run"])


def keep_newest(records: Iterable[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Keep the newest record per model × method × task (× run seed); returns (kept, superseded).

    Each superseded entry says which file lost to which: {"model", "method", "task", "seed",
    "dropped", "dropped_date", "kept", "kept_date"}.
    """
    best: dict[tuple[str, str, str, str], dict] = {}
    losers: list[tuple[tuple[str, str, str, str], dict]] = []
    for rec in records:
        key = record_key(rec)
        old = best.get(key)
        if old is None:
            best[key] = rec
            continue
        new, lost = (rec, old) if rec["date"] >= old["date"] else (old, rec)
        best[key] = new
        losers.append((key, lost))
    superseded = [
        {
            "model": key[0],
            "method": key[1],
            "task": key[2],
            "seed": lost["seed"]["run"],
            "dropped": lost["source"]["results_file"],
            "dropped_date": lost["date_iso"],
            "kept": best[key]["source"]["results_file"],
            "kept_date": best[key]["date_iso"],
        }
        for key, lost in losers
    ]
    return list(best.values()), superseded


def row_labels(records: Sequence[dict[str, Any]]) -> list[str]:
    """Each record's method label, with " seed=N" added where one model × method has several run seeds."""
    seeds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rec in records:
        seeds[(rec["model"]["name"], rec["method"]["label"])].add(str(rec["seed"]["run"]))
    return [
        f"{rec['method']['label']} seed={rec['seed']['run']}"
        if len(seeds[(rec["model"]["name"], rec["method"]["label"])]) > 1
        else rec["method"]["label"]
        for rec in records
    ]


def record_path(record: dict[str, Any], out_dir: str | Path) -> Path:
    task = re.sub(r"[^\w.@+-]+", "_", record["task"]["name"])
    return Path(out_dir) / record["model"]["name_sanitized"] / record["method"]["slug"] / f"{task}.json"


def write_leaderboard_records(records: Iterable[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write each (newest) record to <out_dir>/<model>/<method slug>/<task>.json atomically."""
    kept, _ = keep_newest(records)
    paths = []
    for rec in kept:
        text = json.dumps(rec, indent=2, ensure_ascii=False, default=str) + "\n"
        paths.append(atomic_write_text(record_path(rec, out_dir), text))
    return paths
