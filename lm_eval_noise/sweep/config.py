"""Sweep config YAML: parsing, `${VAR}` expansion and validation before any model loads."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from lm_eval_noise.noise.config import NOISE_ARGS, NoiseConfig, NoiseConfigError
from lm_eval_noise.parsing import as_bool
from lm_eval_noise.pretrained import missing_local_path

TOP_KEYS = (
    "name", "model", "model_args", "tasks", "include_path", "include_defaults", "limit", "batch_size",
    "gen_kwargs", "seeds", "output_dir", "methods", "num_fewshot", "apply_chat_template",
    "confirm_run_unsafe_code",
)
METHOD_KEYS = ("name", "noise", "gen_kwargs")
_METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCALARS = (str, int, float, bool, type(None))


class SweepConfigError(ValueError):
    """The sweep config is invalid; the message names the key and the valid values."""


@dataclasses.dataclass(frozen=True)
class SweepMethod:
    """One decoding method of the sweep: noise args for `set_noise` and generation overrides."""

    name: str
    noise: dict[str, Any]
    gen_kwargs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: one model, many (method, seed, task) evaluations."""

    name: str
    model: str
    model_args: dict[str, Any]
    tasks: tuple[str, ...]
    include_path: str | None
    include_defaults: bool
    limit: int | float | None
    batch_size: int | str
    gen_kwargs: dict[str, Any]
    seeds: tuple[int, ...]
    output_dir: Path
    methods: tuple[SweepMethod, ...]
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    confirm_run_unsafe_code: bool = False

    def gen_kwargs_for(self, method: SweepMethod) -> dict[str, Any]:
        """The sweep-wide gen_kwargs with the method's on top."""
        return {**self.gen_kwargs, **method.gen_kwargs}

    def run_model_args(self, method: SweepMethod, seed: int) -> str:
        """The `--model_args` string an equivalent `lm_eval` run would use (recorded in results)."""
        merged = {**self.model_args, **method.noise, "noise_seed": seed}
        return ",".join(f"{k}={_arg_text(v)}" for k, v in merged.items())

    def fingerprint(self, method: SweepMethod, seed: int, task: str) -> str:
        """A hash of every setting that changes one evaluation's output (not batch size or paths)."""
        settings = {
            "model": self.model, "model_args": self.model_args, "task": task, "limit": self.limit,
            "noise": method.noise, "seed": seed, "gen_kwargs": self.gen_kwargs_for(method),
            "num_fewshot": self.num_fewshot, "apply_chat_template": self.apply_chat_template,
        }
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _arg_text(value: Any) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def expand_env(value: Any, where: str = "config") -> Any:
    """Replace `${VAR}` in every string with the environment's value; unset variables are an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match) -> str:
        var = match.group(1)
        if var not in os.environ:
            hint = (
                " (the tiny offline model: export TINY_MODEL=$(python -c "
                "'from lm_eval_noise.tiny import ensure_tiny_model; print(ensure_tiny_model())'))"
                if var == "TINY_MODEL" else ""
            )
            raise SweepConfigError(f"{where}: environment variable ${{{var}}} is not set{hint}")
        return os.environ[var]

    return _ENV_VAR.sub(sub, value)


def _kwargs(value: Any, where: str) -> dict[str, Any]:
    """A mapping of scalar (or list) values, from a YAML mapping or a `k=v,k2=v2` string."""
    if value is None:
        return {}
    if isinstance(value, str):
        from lm_eval.utils import simple_parse_args_string

        try:
            value = simple_parse_args_string(value)
        except ValueError as e:
            raise SweepConfigError(f"{where}={value!r} is not 'key=value,key2=value2': {e}") from None
    if not isinstance(value, dict):
        raise SweepConfigError(f"{where} must be a mapping or a 'key=value,...' string, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise SweepConfigError(f"{where}: key {key!r} is not a string")
        if not (isinstance(item, _SCALARS) or (isinstance(item, list) and all(isinstance(x, _SCALARS) for x in item))):
            raise SweepConfigError(f"{where}.{key} must be a number, string, boolean or list, got {item!r}")
    return dict(value)


def _unknown(keys: Any, valid: tuple[str, ...], where: str) -> None:
    unknown = [k for k in keys if k not in valid]
    if unknown:
        hints = [
            f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(str(k), valid, 1)) else repr(k)
            for k in unknown
        ]
        raise SweepConfigError(f"{where}: unknown key(s) {', '.join(hints)}; valid keys: {', '.join(valid)}")


# Generation kwargs lm-eval reads itself; every other key goes to transformers' generate().
_LM_EVAL_GEN_KEYS = ("until", "max_gen_toks", "do_sample", "temperature")


def _check_gen_kwargs(kwargs: dict[str, Any], where: str) -> None:
    """A misspelt key (`temprature`) would reach generate() only after the model loaded: name it now."""
    if not kwargs:
        return
    from transformers import GenerationConfig

    valid = set(_LM_EVAL_GEN_KEYS) | {k for k in GenerationConfig().to_dict() if not k.startswith("_")}
    if unknown := [k for k in kwargs if k not in valid]:
        hints = [
            f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, sorted(valid), 1)) else repr(k)
            for k in unknown
        ]
        raise SweepConfigError(
            f"{where}: unknown generation argument(s) {', '.join(hints)}; valid: {', '.join(_LM_EVAL_GEN_KEYS)} "
            "and the fields of transformers' GenerationConfig (top_p, top_k, min_p, repetition_penalty, ...)"
        )


def _limit(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepConfigError(f"limit={value!r} must be an integer >= 1, a fraction in (0, 1), or null")
    if isinstance(value, float) and 0 < value < 1:
        return value
    if float(value).is_integer() and value >= 1:
        return int(value)
    raise SweepConfigError(f"limit={value!r} must be an integer >= 1, a fraction in (0, 1), or null")


def _batch_size(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and re.fullmatch(r"auto(:\d+)?", value):
        return value
    raise SweepConfigError(f"batch_size={value!r} must be an integer >= 1, 'auto' or 'auto:N'")


def _seeds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SweepConfigError(f"seeds={value!r} must be a non-empty list of integers >= 0, e.g. [0, 1, 2]")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SweepConfigError(f"seeds: {seed!r} is not an integer >= 0")
    if len(set(value)) != len(value):
        raise SweepConfigError(f"seeds={value!r} lists a seed twice")
    return tuple(value)


def _method(raw: Any, i: int) -> SweepMethod:
    where = f"methods[{i}]"
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{where} must be a mapping with keys {', '.join(METHOD_KEYS)}, got {raw!r}")
    _unknown(raw, METHOD_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _METHOD_NAME.match(name):
        raise SweepConfigError(
            f"{where}.name={name!r} must be a folder-safe name: letters, digits and . _ = + - (not starting with . _ = + -)"
        )
    noise = _kwargs(raw.get("noise"), f"{where}.noise")
    if "noise_seed" in noise:
        raise SweepConfigError(f"{where}.noise: set noise_seed with the top-level `seeds` list, not per method")
    try:
        NoiseConfig.from_args(**noise)
    except NoiseConfigError as e:
        raise SweepConfigError(f"{where} ({name}).noise: {e}") from None
    gen = _kwargs(raw.get("gen_kwargs"), f"{where}.gen_kwargs")
    _check_gen_kwargs(gen, f"{where} ({name}).gen_kwargs")
    return SweepMethod(name, noise, gen)


def parse_config(data: Any, name: str, output_dir: str | Path | None = None) -> SweepConfig:
    """Validate a loaded YAML mapping; `check_model` and `check_tasks` then check names against lm-eval."""
    if not isinstance(data, dict):
        raise SweepConfigError(f"the sweep config must be a YAML mapping, got {type(data).__name__}")
    _unknown(data, TOP_KEYS, "config")
    data = expand_env(data)
    name = str(data.get("name") or name)
    model = data.get("model", "hf-noisy")
    if not isinstance(model, str) or not model:
        raise SweepConfigError(f"model={model!r} must be a registered lm-eval model name such as 'hf-noisy'")
    model_args = _kwargs(data.get("model_args"), "model_args")
    if noisy := [k for k in model_args if k in NOISE_ARGS]:
        raise SweepConfigError(
            f"model_args must not hold noise arguments ({', '.join(noisy)}): give them per method under "
            "methods[].noise, and noise seeds under `seeds`"
        )
    if "pretrained" not in model_args:
        raise SweepConfigError("model_args needs pretrained=<model name or path>")
    tasks = data.get("tasks")
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise SweepConfigError(f"tasks={tasks!r} must be a non-empty list of task names")
    if len(set(tasks)) != len(tasks):
        raise SweepConfigError(f"tasks={tasks!r} lists a task twice")
    methods = data.get("methods")
    if not isinstance(methods, list) or not methods:
        raise SweepConfigError("methods must be a non-empty list of {name, noise, gen_kwargs} mappings")
    parsed = tuple(_method(m, i) for i, m in enumerate(methods))
    names = [m.name for m in parsed]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise SweepConfigError(f"methods: duplicate method name(s) {', '.join(dupes)}; each name must be unique")
    include_path = data.get("include_path")
    if include_path is None:
        from lm_eval_noise import tasks_dir

        include_path = str(tasks_dir())
    elif not isinstance(include_path, str) or not Path(include_path).is_dir():
        raise SweepConfigError(f"include_path={include_path!r} is not a folder of task YAMLs")
    num_fewshot = data.get("num_fewshot")
    if num_fewshot is not None and (isinstance(num_fewshot, bool) or not isinstance(num_fewshot, int) or num_fewshot < 0):
        raise SweepConfigError(f"num_fewshot={num_fewshot!r} must be an integer >= 0 or null")
    out = output_dir if output_dir is not None else data.get("output_dir") or Path("results") / name
    gen_kwargs = _kwargs(data.get("gen_kwargs"), "gen_kwargs")
    _check_gen_kwargs(gen_kwargs, "gen_kwargs")
    config = SweepConfig(
        name=name,
        model=model,
        model_args=model_args,
        tasks=tuple(tasks),
        include_path=include_path,
        include_defaults=as_bool("include_defaults", data.get("include_defaults", True), SweepConfigError),
        limit=_limit(data.get("limit")),
        batch_size=_batch_size(data.get("batch_size", 1)),
        gen_kwargs=gen_kwargs,
        seeds=_seeds(data.get("seeds", [0])),
        output_dir=Path(out),
        methods=parsed,
        num_fewshot=num_fewshot,
        apply_chat_template=as_bool("apply_chat_template", data.get("apply_chat_template", False), SweepConfigError),
        confirm_run_unsafe_code=as_bool("confirm_run_unsafe_code", data.get("confirm_run_unsafe_code", False), SweepConfigError),
    )
    # Last, so that every other mistake in the file is reported first.
    if problem := missing_local_path(model_args["pretrained"]):
        raise SweepConfigError(f"model_args: {problem}")
    return config


def load_config(path: str | Path, output_dir: str | Path | None = None) -> SweepConfig:
    """Read and validate a sweep YAML; its name defaults to the file's stem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepConfigError(f"no such sweep config: {path}") from None
    except yaml.YAMLError as e:
        raise SweepConfigError(f"{path} is not valid YAML: {e}") from None
    return parse_config(data, path.stem, output_dir)


def check_model(config: SweepConfig) -> Any:
    """The registered model class; it must switch noise in place (`set_noise`)."""
    import lm_eval.api.registry as registry

    import lm_eval_noise.model  # noqa: F401  registers hf-noisy without the .pth hook

    try:
        cls = registry.get_model(config.model)
    except ValueError:
        raise SweepConfigError(f"model={config.model!r} is not a registered lm-eval model; use hf-noisy") from None
    if not hasattr(cls, "set_noise"):
        raise SweepConfigError(f"model={config.model!r} cannot switch noise in place (no set_noise); use hf-noisy")
    return cls


def check_tasks(config: SweepConfig, task_manager: Any) -> None:
    """Every task name must be known to the task index."""
    known = set(task_manager.all_tasks)
    missing = [t for t in config.tasks if t not in known]
    if missing:
        hints = [
            f"{t!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(t, known, 1)) else repr(t)
            for t in missing
        ]
        where = str(config.include_path) + (" and lm-eval's own tasks" if config.include_defaults else "")
        raise SweepConfigError(f"tasks: unknown task(s) {', '.join(hints)} (searched {where})")
