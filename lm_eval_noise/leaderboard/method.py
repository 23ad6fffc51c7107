"""A stable, human-readable method label (and its structured form) from one results JSON alone.

Labels look like: "greedy", "T=0.8", "top_p=0.95 T=1.0", "embedding σ=0.002",
"embedding σ=0.002 + T=0.8", "weight+activation σ=0.01", "embedding σ=0.01 [per_sequence]",
"dummy σ=1.0 k=4 prefix", "dummy k=4 suffix table", "random prefix k=8",
"embedding σ=0.002 + random prefix k=8".

Where things come from, first found wins:

- results["config"]["method"]: written by the sweep runner. A string is the label; a dict may give
  "label" (or "name"), "noise" and "gen_kwargs"/"generation_kwargs"/"generation".
- Noise: results["config"]["noise"] (hf-noisy's provenance block, merged in by lm-eval from the
  model's get_model_info()), else the `noise*` and `random_prefix*` keys of results["config"]["model_args"]. Keys are
  read with or without a "noise_" prefix ("noise"/"type", "noise_scale"/"scale"/"sigma", ...).
  A type of "none" (or no type) means no noise. The seed and measured values (reference norm
  value, versions) are recorded but kept out of the label.
- Decoding: the task's generation_kwargs in results["configs"][task] (lm-eval folds --gen_kwargs
  into them), else results["config"]["gen_kwargs"]. Sampling means do_sample is true, or
  do_sample is unset and temperature > 0 (the run's intent); otherwise it is greedy. Tasks that do
  not generate (loglikelihood, multiple choice) use the run's --gen_kwargs, and count as greedy
  when there are none, so a sweep method keeps one label across its tasks.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field
from typing import Any

# Noise settings that change what is measured, with the value that is left out of the label.
# The label shows any other value, e.g. "[per_sequence]" or "[layer=5]".
_QUALIFIER_DEFAULTS: dict[str, Any] = {
    "scope": "per_token",
    "embed_norm": "vocab",
    "layer": None,
    "positions": "all",
    "first_k": None,
    "targets": None,
    "dist": "gaussian",
    "schedule": "constant",
    "scale_end": None,
    "temperature_compensation": None,
    "t_base": None,
    "weight_draw": "repeat",
}
_SHOW_VALUE_ONLY = {"scope"}  # "[per_sequence]" rather than "[scope=per_sequence]"
_KEY_ALIASES = {
    "": "type",
    "noise": "type",
    "type": "type",
    "types": "type",
    "kind": "type",
    "sigma": "scale",
    "scale": "scale",
    "scales": "scale",
    "std": "scale",
}
_NO_NOISE = {"", "none", "off", "false", "null", "0"}


@dataclass(frozen=True)
class Method:
    """How one run decoded: a label for tables and the structured configuration behind it."""

    label: str
    noise: dict[str, Any] | None = None  # normalised noise block; None = no noise
    generation: dict[str, Any] = field(default_factory=dict)  # normalised decoding settings
    source: str = "derived"  # "config.method" when the sweep named the method

    @property
    def slug(self) -> str:
        return method_slug(self.label)

    @property
    def kind(self) -> str:
        """greedy | sampling | noise | noise+sampling."""
        sampling = bool(self.generation.get("do_sample"))
        if self.noise:
            return "noise+sampling" if sampling else "noise"
        return "sampling" if sampling else "greedy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "slug": self.slug,
            "kind": self.kind,
            "noise": self.noise,
            "generation": self.generation,
            "source": self.source,
        }


def describe_method(results: dict[str, Any], task: str | None = None) -> Method:
    """The method of `task` in a results JSON (default: the run's method, from its first generating task)."""
    config = results.get("config") or {}
    named = config.get("method")
    if isinstance(named, str) and named.strip():
        named = {"label": named.strip()}
    if not isinstance(named, dict):
        named = {}

    noise_src = named.get("noise", config.get("noise"))
    noise = normalize_noise(noise_src) if noise_src is not None else _noise_from_model_args(config.get("model_args"))

    gen_src = next((named[k] for k in ("gen_kwargs", "generation_kwargs", "generation") if k in named), None)
    generation = normalize_generation(gen_src if gen_src is not None else _run_gen_kwargs(results, task))

    label = named.get("label") or named.get("name")
    if label:
        return Method(str(label), noise, generation, "config.method")
    return Method(format_label(noise, generation), noise, generation, "derived")


def method_label(results: dict[str, Any], task: str | None = None) -> str:
    return describe_method(results, task).label


def _run_gen_kwargs(results: dict[str, Any], task: str | None) -> Any:
    configs = results.get("configs") or {}
    cli = (results.get("config") or {}).get("gen_kwargs")
    if task is None:  # the run's method: the first generating task, else the CLI override
        task = next((t for t, c in configs.items() if isinstance(c, dict) and c.get("generation_kwargs")), None)
    task_cfg = configs.get(task) if task else None
    if isinstance(task_cfg, dict) and task_cfg.get("output_type", "generate_until") == "generate_until":
        if task_cfg.get("generation_kwargs"):
            return task_cfg["generation_kwargs"]
    return cli


# ---- normalisation ----------------------------------------------------------------------------


def normalize_noise(block: Any) -> dict[str, Any] | None:
    """A provenance block (dict or bare type string) -> {"type", "types", "scale", ...} or None.

    "type" joins several noise types with "+" ("weight+activation"); "scale" is the shared σ, or
    None with "scales" per type when the types have different σ.
    """
    if block is None:
        return None
    if isinstance(block, str):
        block = {"type": block}
    if not isinstance(block, dict):
        raise ValueError(f"noise provenance must be a dict or a type name, got {type(block).__name__}")
    out: dict[str, Any] = {}
    for key, value in block.items():
        short = key.removeprefix("noise_") if key != "noise" else ""
        out[_KEY_ALIASES.get(short, short)] = value
    types = _types(out.get("type"))
    prefix = _num(out.get("random_prefix"))
    out["random_prefix"] = int(prefix) if prefix else None
    if not types and not out["random_prefix"]:
        return None
    out["types"] = types
    out["type"] = "+".join(types)
    if not types or (types == ["dummy"] and str(out.get("dummy_init")).lower() == "table"):
        out["scale"] = None  # a random prefix, or table-drawn dummy rows, have no σ
        out.pop("scales", None)
        return out
    scale = out.get("scale")
    if isinstance(scale, dict):
        scales = {str(k): _num(v) for k, v in scale.items()}
        distinct = set(scales.values())
        out["scales"] = scales
        out["scale"] = distinct.pop() if len(distinct) == 1 else None
    else:
        out["scale"] = _num(scale)
    return out


def _types(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = re.split(r"[+,]", str(value))
    parts = [p.strip().lower() for p in parts]
    return [p for p in parts if p not in _NO_NOISE]


def parse_model_args(model_args: Any) -> dict[str, Any]:
    """lm-eval's model_args as recorded (a dict, or the "k=v,k=v" string) as a dict."""
    if isinstance(model_args, dict):
        return model_args
    if isinstance(model_args, str):
        return dict(kv.split("=", 1) for kv in model_args.split(",") if "=" in kv)
    return {}


def _noise_from_model_args(model_args: Any) -> dict[str, Any] | None:
    model_args = parse_model_args(model_args)
    block = {k: v for k, v in model_args.items() if k == "noise" or k.startswith(("noise_", "random_prefix"))}
    return normalize_noise(block) if block else None


def normalize_generation(gen: Any) -> dict[str, Any]:
    """Decoding settings -> {"do_sample": bool, "temperature"?, "top_p"?, "top_k"?, "min_p"?}.

    Accepts lm-eval's generation_kwargs dict or a "k=v,k=v" string. `until`/`max_gen_toks` are kept
    out (they do not make a method).
    """
    if isinstance(gen, str):
        gen = dict(kv.split("=", 1) for kv in gen.split(",") if "=" in kv)
    gen = dict(gen) if isinstance(gen, dict) else {}
    temperature = _num(gen.get("temperature"))
    do_sample = _bool(gen.get("do_sample"))
    if do_sample is None:
        do_sample = bool(temperature and temperature > 0)
    if not do_sample:
        return {"do_sample": False}
    out: dict[str, Any] = {"do_sample": True, "temperature": 1.0 if temperature is None else temperature}
    top_p = _num(gen.get("top_p"))
    if top_p is not None and top_p < 1.0:
        out["top_p"] = top_p
    top_k = _num(gen.get("top_k"))
    if top_k is not None and top_k > 0:
        out["top_k"] = int(top_k)
    min_p = _num(gen.get("min_p"))
    if min_p:
        out["min_p"] = min_p
    return out


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no", "none", ""):
            return False
        return None
    return bool(value)


# ---- formatting -------------------------------------------------------------------------------


def fmt_num(x: float | int) -> str:
    """Shortest round-trip text: 0.8 -> "0.8", 1 -> "1.0", 0.002 -> "0.002", 50 (int) -> "50"."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return repr(float(x))


def format_generation(gen: dict[str, Any]) -> str:
    if not gen.get("do_sample"):
        return "greedy"
    parts = []
    for key in ("top_p", "top_k", "min_p"):
        if key in gen:
            parts.append(f"{key}={fmt_num(gen[key])}")
    parts.append(f"T={fmt_num(gen['temperature'])}")
    return " ".join(parts)


def format_noise(noise: dict[str, Any]) -> str:
    types = noise["types"]
    if not types:
        text = ""
    elif noise.get("scale") is not None:
        text = f"{noise['type']} σ={fmt_num(noise['scale'])}"
    elif noise.get("scales"):
        text = " + ".join(
            f"{t} σ={fmt_num(noise['scales'][t])}" if noise["scales"].get(t) is not None else t for t in types
        )
    else:
        text = noise["type"]
    quals = []
    for key, default in _QUALIFIER_DEFAULTS.items():
        value = noise.get(key)
        empty = value is None or value is False or value in ("", (), []) or str(value).lower() == "none"
        if empty or (value == default and not isinstance(value, bool)):
            continue
        if isinstance(value, (list, tuple)):
            value = "|".join(map(str, value))
        elif isinstance(value, float):
            value = fmt_num(value)
        quals.append(str(value) if key in _SHOW_VALUE_ONLY else f"{key}={value}")
    if "dummy" in types:  # "dummy σ=1.0 k=4 prefix"; the init only when it is not the gaussian default
        init = str(noise.get("dummy_init") or "gaussian")
        text += f" k={noise.get('dummy_tokens')} {noise.get('dummy_position') or 'prefix'}"
        text += f" {init}" if init != "gaussian" else ""
    text = f"{text} [{', '.join(quals)}]" if quals else text
    if noise.get("random_prefix"):
        prefix = f"random prefix k={noise['random_prefix']}"
        alphabet = noise.get("random_prefix_alphabet")
        if alphabet and alphabet != string.ascii_uppercase:  # hf-noisy's default alphabet
            prefix += f" alphabet={alphabet}"
        text = f"{text} + {prefix}" if text else prefix
    return text


def format_label(noise: dict[str, Any] | None, generation: dict[str, Any]) -> str:
    gen = format_generation(generation)
    if not noise:
        return gen
    return format_noise(noise) if gen == "greedy" else f"{format_noise(noise)} + {gen}"


def method_slug(label: str) -> str:
    """A file-name-safe form of a label: "embedding σ=0.002 + T=0.8" -> "embedding_sigma=0.002+T=0.8"."""
    text = label.replace("σ", "sigma").replace(" + ", "+").replace(" ", "_")
    text = re.sub(r"[^A-Za-z0-9._=+@-]+", "_", text).strip("_.")
    return text or "method"
