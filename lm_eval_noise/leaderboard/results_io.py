"""Finding and reading lm-eval output: results JSONs, their logged samples, and metric keys.

lm-eval 0.4.13 (`EvaluationTracker`) writes, for `--output_path DIR --log_samples`:

- `DIR/<model_name_sanitized>/results_<date_id>.json`, or `<stem>_<date_id>.json` next to
  `--output_path X/<stem>.json`;
- `samples_<task>_<date_id>.jsonl` in the same folder, one JSON line per doc and filter, with the
  same `date_id` (`datetime.now().isoformat()` with ':' replaced by '-').

A results JSON holds `results[task]["<metric>,<filter>"]` and `"<metric>_stderr,<filter>"` (a float
or "N/A"), plus `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, `config`, `date`
(a UNIX timestamp) and version fields. Nothing here imports lm-eval: these readers work on any
folder of its output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STDERR_SUFFIX = "_stderr"
DATE_ID_FORMATS = ("%Y-%m-%dT%H-%M-%S.%f", "%Y-%m-%dT%H-%M-%S")


class ResultsError(ValueError):
    """Bad input for the leaderboard, plot or compare commands; the message says what and why."""


@dataclass(frozen=True)
class ResultsFile:
    """One lm-eval results JSON, as read from disk."""

    path: Path
    data: dict[str, Any]

    @property
    def date_id(self) -> str | None:
        """The `<date_id>` suffix lm-eval put in the file name (shared with its samples files)."""
        return file_date_id(self.path.name)

    @property
    def date(self) -> float:
        """When the run started (UNIX time): results["date"], else the file name's date, else mtime."""
        return run_date(self.data, self.path)

    @property
    def tasks(self) -> list[str]:
        return list(self.data.get("results", {}))

    def samples_path(self, task: str) -> Path | None:
        """The samples_<task>_<date_id>.jsonl written with this results file, if it is there."""
        return find_samples_file(self.path, task)


def is_results_json(obj: Any) -> bool:
    """True for the aggregated results JSON lm-eval writes (not samples, not other JSON)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("results"), dict)
        and ("config" in obj or "configs" in obj or "versions" in obj)
    )


def load_results(path: str | Path) -> ResultsFile:
    """Read one results JSON; a clear error if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"no such results file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path} is not valid JSON: {e}") from None
    if not is_results_json(data):
        raise ResultsError(
            f"{path} is not an lm-eval results JSON (expected top-level 'results' and 'config' keys)"
        )
    return ResultsFile(path, data)


@dataclass(frozen=True)
class Unreadable:
    """A results JSON found in a folder that could not be read (corrupt, truncated, unreadable)."""

    path: Path
    reason: str

    @property
    def tasks(self) -> list[str]:
        """The tasks it probably held: those of the samples files that share its date id."""
        date_id = file_date_id(self.path.name)
        if date_id is None:
            return []
        found = (sample_file_task(p.name) for p in self.path.parent.glob(f"samples_*_{date_id}.jsonl"))
        return sorted({t for t in found if t})

    def describe(self) -> str:
        tasks = self.tasks
        held = f" (it held {', '.join(tasks)}, judging by its samples files)" if tasks else ""
        return f"{self.path}: {self.reason}{held}"


def scan_results(root: str | Path) -> tuple[list[ResultsFile], list[Unreadable]]:
    """Every lm-eval results JSON at or under `root` (a file or a folder, searched recursively),
    and the files that should have been one but could not be read.

    Unreadable: a .json that is not valid JSON (a truncated or corrupt write), cannot be read
    from disk, or is named like lm-eval's results (`<stem>_<date_id>.json`) yet is not one.
    Other valid JSON (a leaderboard written with --json, records) is not a results file and is
    passed over. A single file given as `root` must be a results JSON (ResultsError otherwise).
    """
    root = Path(root)
    if root.is_file():
        return [load_results(root)], []
    if not root.is_dir():
        raise ResultsError(f"no such file or folder: {root}")
    found, unreadable = [], []
    for path in sorted(root.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            unreadable.append(Unreadable(path, f"cannot be read ({e.strerror or e})"))
            continue
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            unreadable.append(Unreadable(path, f"not valid JSON, corrupt or truncated ({e})"))
            continue
        if is_results_json(data):
            found.append(ResultsFile(path, data))
        elif file_date_id(path.name) is not None:
            unreadable.append(Unreadable(path, "named like an lm-eval results file but holds no 'results' and 'config'"))
    return found, unreadable


def find_results_files(root: str | Path) -> list[ResultsFile]:
    """The readable results JSONs of `scan_results` (unreadable files are passed over silently:
    the commands use `read_results_tree`, which names them)."""
    return scan_results(root)[0]


def read_results_tree(root: str | Path, strict: bool = False, warn=None) -> tuple[list[ResultsFile], list[Unreadable]]:
    """`scan_results`, naming each unreadable file in a warning on `warn` (default: stderr).

    With `strict`, any unreadable file is a ResultsError (the commands' --strict).
    """
    files, unreadable = scan_results(root)
    if unreadable:
        out = warn if warn is not None else sys.stderr
        for bad in unreadable:
            print(f"warning: skipped {bad.describe()}", file=out)
        if strict:
            raise ResultsError(
                f"--strict: {len(unreadable)} results file{'s' if len(unreadable) != 1 else ''} under {root} "
                f"could not be read: {', '.join(str(b.path) for b in unreadable)}"
            )
    return files, unreadable


def file_date_id(name: str) -> str | None:
    """`results_2025-01-02T03-04-05.678.json` -> `2025-01-02T03-04-05.678` (lm-eval's own rule)."""
    stem = name.removesuffix(".jsonl").removesuffix(".json")
    if "_" not in stem:
        return None
    date_id = stem[stem.rfind("_") + 1 :]
    return date_id if _parse_date_id(date_id) is not None else None


def _parse_date_id(date_id: str) -> datetime | None:
    for fmt in DATE_ID_FORMATS:
        try:
            return datetime.strptime(date_id, fmt)
        except ValueError:
            pass
    return None


def run_date(data: dict[str, Any], path: Path | None = None) -> float:
    """Start time of a run as UNIX time; used to keep the newest of repeated runs."""
    date = data.get("date")
    if isinstance(date, (int, float)):
        return float(date)
    if isinstance(date, str):
        try:
            return float(date)
        except ValueError:
            try:
                return datetime.fromisoformat(date).timestamp()
            except ValueError:
                pass
    if path is not None:
        date_id = file_date_id(path.name)
        parsed = _parse_date_id(date_id) if date_id else None
        if parsed is not None:
            return parsed.timestamp()
        try:
            return path.stat().st_mtime
        except OSError:
            pass
    return 0.0


def iso_date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def sample_file_task(name: str) -> str | None:
    """`samples_<task>_<date_id>.jsonl` -> `<task>` (task names may contain underscores)."""
    if not (name.startswith("samples_") and name.endswith(".jsonl")):
        return None
    stem = name.removesuffix(".jsonl")
    return stem[len("samples_") : stem.rfind("_")] or None


def find_samples_file(results_path: Path, task: str) -> Path | None:
    """The samples file for `task` written with `results_path`: same folder, same date_id.

    Falls back to the only (or newest) samples_<task>_*.jsonl in that folder when the date ids
    differ (e.g. files renamed by a tool), skipping those whose date id names another results file
    there (they belong to that run); returns None when there is none.
    """
    folder = results_path.parent
    date_id = file_date_id(results_path.name)
    if date_id:
        exact = folder / f"samples_{task}_{date_id}.jsonl"
        if exact.is_file():
            return exact
    others = {file_date_id(p.name) for p in folder.glob("*.json") if p != results_path} - {None}
    candidates = [
        p for p in folder.glob("samples_*.jsonl")
        if sample_file_task(p.name) == task and file_date_id(p.name) not in others
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (file_date_id(p.name) or "", p.stat().st_mtime))


def iter_samples(path: Path) -> Iterator[dict[str, Any]]:
    """The per-doc records of a samples JSONL (blank lines skipped; a clear error on a bad line)."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path}:{lineno}: not valid JSON ({e})") from None


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


# ---- atomic writes ----------------------------------------------------------------------------


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` via a temp file in the same folder and os.replace (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
