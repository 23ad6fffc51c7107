"""What a results JSON says: its metric keys, seed, model and versions (lm-eval 0.4.13's layout).

A results JSON holds `results[task]["<metric>,<filter>"]` and `"<metric>_stderr,<filter>"` (a float or
"N/A"), `higher_is_better`, `configs`, `n-samples`, `config` (with `model_args`, and the `noise` block
hf-noisy writes through `lm_eval_noise.provenance`) and version fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lm_eval.utils import simple_parse_args_string

from lm_eval_noise.results.files import ResultsError

STDERR_SUFFIX = "_stderr"


# ---- metric keys -------------------------------------------------------------------------------


def split_metric_key(key: str) -> tuple[str, str]:
    """`"pass@5,none"` -> `("pass@5", "none")`; a key without a filter gets filter "none"."""
    metric, _, filt = key.partition(",")
    return metric, (filt or "none")


def task_metrics(task_results: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """`{"metric,filter": (value, stderr)}` for one task's entry in results["results"].

    Skips the bookkeeping fields lm-eval puts beside the metrics (alias, name, sample_len) and
    non-numeric values; a stderr of "N/A" becomes None.
    """
    out: dict[str, tuple[float | None, float | None]] = {}
    for key, value in task_results.items():
        if "," not in key:
            continue
        metric, filt = split_metric_key(key)
        if metric.endswith(STDERR_SUFFIX):
            continue
        num = as_number(value)
        if num is None:
            continue
        out[key] = (num, as_number(task_results.get(f"{metric}{STDERR_SUFFIX},{filt}")))
    return out


def as_number(value: Any) -> float | None:
    """A finite-or-not float for int/float/bool values; None for anything else ("N/A", lists...)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def display_metric(key: str, keys_of_task: Iterable[str]) -> str:
    """`metric` when the task has a single filter for it, else `metric,filter`."""
    metric, _ = split_metric_key(key)
    same = [k for k in keys_of_task if split_metric_key(k)[0] == metric]
    return metric if len(same) <= 1 else key


def split_metric_list(text: str, known_keys: Iterable[str]) -> list[str]:
    """Split a comma-separated --metrics value, keeping "metric,filter" pairs together.

    "pass@5,self_bleu" -> ["pass@5", "self_bleu"]; "pass@5,all_samples,acc" -> ["pass@5,all_samples",
    "acc"] when "all_samples" is a filter (and not a metric) of the known result keys.
    """
    known = [split_metric_key(k) for k in known_keys]
    metrics = {m for m, _ in known}
    filters = {f for _, f in known} - metrics
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    out: list[str] = []
    for tok in tokens:
        if out and tok in filters and "," not in out[-1]:
            out[-1] = f"{out[-1]},{tok}"
        else:
            out.append(tok)
    return out


def resolve_metric(name: str, available: Iterable[str], where: str = "") -> str:
    """Map a user's metric name (with or without ",filter") to one of the `available` result keys.

    Raises ResultsError listing the available metrics when `name` matches none, or several.
    """
    available = sorted(set(available))
    if name in available:
        return name
    metric, _, filt = name.partition(",")
    if filt:
        matches = [k for k in available if k == f"{metric},{filt}"]
    else:
        matches = [k for k in available if split_metric_key(k)[0] == metric]
    if len(matches) == 1:
        return matches[0]
    where = f" in {where}" if where else ""
    if not matches:
        listed = ", ".join(available) if available else "(none)"
        raise ResultsError(f"metric {name!r} not found{where}; available: {listed}")
    raise ResultsError(
        f"metric {name!r} is ambiguous{where}: it has several filters; pick one of {', '.join(matches)}"
    )


# ---- the run ------------------------------------------------------------------------------------


def recorded_model_args(model_args: Any) -> dict[str, Any]:
    """A run's model_args as recorded (a dict, or the "k=v,k=v" string), parsed by the rules lm-eval
    applied when it ran (`simple_parse_args_string`)."""
    if isinstance(model_args, dict):
        return model_args
    if isinstance(model_args, str):
        return simple_parse_args_string(model_args)
    return {}


def run_seed(results: dict[str, Any]) -> Any:
    """The seed that tells repeated runs of one method apart: the sweep's seed, else hf-noisy's
    noise_seed (which also seeds its sampling), else lm-eval's torch seed (stock `hf` sampling)."""
    config = results.get("config") or {}
    sweep = config.get("sweep")
    if isinstance(sweep, dict) and sweep.get("seed") is not None:
        return sweep["seed"]
    for block in (config.get("noise"), recorded_model_args(config.get("model_args"))):
        if isinstance(block, dict) and block.get("noise_seed") is not None:  # recorded even with noise=none
            return block["noise_seed"]
    return config.get("torch_seed")


def short_model_name(name: str) -> str:
    """A local model path as its folder name ("/root/.cache/x/tiny-llama" -> "tiny-llama"); hub ids
    ("org/model") and other names as they are."""
    text = str(name)
    if text.startswith(("/", "./", "../", "~")):
        return Path(text.rstrip("/")).name or text
    return text


def model_info(data: dict[str, Any]) -> dict[str, Any]:
    """What a results JSON says of its model; one place derives the name (lm-eval's model_name, else the
    `pretrained` model arg, else the model type)."""
    config = data.get("config") or {}
    args = config.get("model_args")
    name = data.get("model_name") or recorded_model_args(args).get("pretrained") or config.get("model") or "unknown"
    return {
        "name": name,
        "short_name": short_model_name(name),
        "name_sanitized": data.get("model_name_sanitized") or sanitize_model_name(name),
        "source": data.get("model_source") or config.get("model"),
        "args": args,
        "dtype": config.get("model_dtype"),
        "revision": config.get("model_revision"),
        "sha": config.get("model_sha") or None,
        "num_parameters": config.get("model_num_parameters"),
    }


def torch_version(data: dict[str, Any]) -> str | None:
    """The torch version of a run: hf-noisy's provenance (`versions`), else lm-eval's environment dump."""
    versions = ((data.get("config") or {}).get("noise") or {}).get("versions")
    if isinstance(versions, dict) and versions.get("torch"):
        return str(versions["torch"])
    match = re.search(r"PyTorch version: (\S+)", str(data.get("pretty_env_info") or ""))
    return match.group(1) if match else None


def sanitize_model_name(name: str) -> str:
    from lm_eval.utils import sanitize_model_name  # only for files that lack model_name_sanitized

    return sanitize_model_name(name)
