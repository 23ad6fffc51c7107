"""Reading the prompts file: plain text (one prompt per line) or JSONL with a `prompt` field."""

from __future__ import annotations

import json
from pathlib import Path

JSONL_SUFFIXES = (".jsonl", ".json")


def _is_jsonl(path: Path, lines: list[str]) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    first = next((line for line in lines if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a text or JSONL file, in order; blank lines are skipped."""
    return [record["prompt"] for record in read_prompt_records(path)]


def read_prompt_records(path: str | Path) -> list[dict]:
    """Each prompt as a record: a text line as {"prompt": line}, a JSONL line as its whole object (so
    other fields, e.g. HumanEval's `test` and `entry_point`, come along)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--prompts: file {str(path)!r} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not _is_jsonl(path, lines):
        prompts = [{"prompt": line} for line in lines if line.strip()]
    else:
        prompts = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"--prompts: {path} line {number} is not valid JSON ({err.msg})") from None
            prompt = record.get("prompt") if isinstance(record, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(
                    f"--prompts: {path} line {number} has no non-empty string field 'prompt'; "
                    'JSONL lines must look like {"prompt": "..."}'
                )
            prompts.append(record)
    if not prompts:
        raise ValueError(f"--prompts: {path} holds no prompts (text: one per line; JSONL: a 'prompt' field per line)")
    return prompts
