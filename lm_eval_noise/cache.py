"""The project's cache folder and the build-once protocol for the models it keeps there.

A cached model is a folder with a `done.json` marker written last, listing every file and its size.
A folder without the marker, or whose files no longer match it (an interrupted copy, a truncated
shard, a deleted file), is incomplete: it is removed and rebuilt. Builds go to a temporary sibling
folder that is renamed into place, so a killed build never looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

MARKER = "done.json"


def cache_root() -> Path:
    """`$LM_EVAL_NOISE_CACHE`, else `$XDG_CACHE_HOME/lm_eval_noise`, else `~/.cache/lm_eval_noise`."""
    root = os.environ.get("LM_EVAL_NOISE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lm_eval_noise"
    )
    return Path(root)


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def is_complete(folder: Path, spec: dict) -> bool:
    """True if `folder` holds a finished build of `spec` whose files all still have their recorded sizes."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("spec") != spec or not isinstance(marker.get("files"), dict):
        return False
    files = marker["files"]
    return bool(files) and all(
        (folder / name).is_file() and (folder / name).stat().st_size == size for name, size in files.items()
    )


def build_once(folder: Path, spec: dict, build: Callable[[Path], None], what: str = "model") -> Path:
    """Return `folder` once it holds a complete build of `spec`, running `build(tmp_folder)` if needed."""
    folder = Path(folder)
    if is_complete(folder, spec):
        return folder
    if folder.exists():
        print(f"lm_eval_noise: {folder} is incomplete or corrupt; rebuilding the {what}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
        (tmp / MARKER).write_text(json.dumps({"spec": spec, "files": _file_sizes(tmp)}, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same build first
            if not is_complete(folder, spec):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
