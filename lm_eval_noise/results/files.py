"""Finding and reading lm-eval's output files: results JSONs and their logged samples (JSONL).

lm-eval 0.4.13 (`EvaluationTracker`) writes, for `--output_path DIR --log_samples`:

- `DIR/<model_name_sanitized>/results_<date_id>.json`, or `<stem>_<date_id>.json` next to
  `--output_path X/<stem>.json`;
- `samples_<task>_<date_id>.jsonl` in the same folder, one JSON line per doc and filter, with the
  same `date_id` (`datetime.now().isoformat()` with ':' replaced by '-').

A results JSON holds `results[task]["<metric>,<filter>"]` and `"<metric>_stderr,<filter>"` (a float
or "N/A"), plus `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, `config`, `date`
(a UNIX timestamp) and version fields (read by `results.schema`). Nothing here imports lm-eval:
these readers work on any folder of its output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DATE_ID_FORMATS = ("%Y-%m-%dT%H-%M-%S.%f", "%Y-%m-%dT%H-%M-%S")


class ResultsError(ValueError):
    """Unreadable or unsuitable lm-eval output (bad input for leaderboard, plot, compare); the message says
    what and why."""


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


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (samples files, datasets), blank lines skipped; a bad line is a
    ResultsError (a ValueError) naming the file and line."""
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ResultsError(f"{path}:{lineno}: not a JSON object: {e}") from None
            if not isinstance(row, dict):
                raise ResultsError(f"{path}:{lineno}: not a JSON object: {type(row).__name__}")
            yield row


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
