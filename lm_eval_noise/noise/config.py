"""The resolved, validated noise configuration behind `hf-noisy`'s model args."""

from __future__ import annotations

import dataclasses
import math
import string
from typing import Any

# Perturbations of what the model computes, sigma relative to what they perturb (the alpha tool measures
# these). `dummy` adds input positions instead: it takes noise_dummy_* and no position mask.
NOISE_TYPES = ("embedding", "weight", "activation", "hidden", "lm_head")
KINDS = (*NOISE_TYPES, "dummy")
SCOPES = ("per_token", "per_sequence")
EMBED_NORMS = ("vocab", "input")
POSITIONS = ("all", "prompt", "generated")
SCHEDULES = ("constant", "linear", "cosine", "exp")
DISTS = ("gaussian", "uniform")
COMPENSATIONS = ("none", "auto")
TARGET_KINDS = ("attention", "mlp", "lm_head")
TARGET_DEPTHS = ("early", "middle", "late")
DUMMY_POSITIONS = ("prefix", "suffix")
DUMMY_INITS = ("gaussian", "table")
# Weight noise: one draw per repeat index shared by every doc of that repeat (a perturbed model, as in
# the study's protocol), or one draw per generated sample.
WEIGHT_DRAWS = ("repeat", "sample")
# Nagarajan et al. (ICML 2025) write their seed strings in uppercase letters ("XKPQMZ").
PREFIX_ALPHABET = string.ascii_uppercase
# Types whose noise can differ per token position (structured injection applies to them): all the
# hooked ones, whose noise goes through one position mask; a weight draw has no positions.
POSITIONAL_TYPES = ("embedding", "activation", "hidden", "lm_head")


class NoiseConfigError(ValueError):
    """A model arg of `hf-noisy` has an invalid value."""


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in valid:
        raise NoiseConfigError(f"{name}={value!r} is not valid; valid values: {', '.join(valid)}")
    return text


def _float(name: str, value: Any, *, minimum: float | None = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NoiseConfigError(f"{name}={value!r} is not a number; expected a float >= {minimum}") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise NoiseConfigError(f"{name}={value!r} is out of range; expected a finite float >= {minimum}")
    return number


def _int(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise NoiseConfigError(f"{name}={value!r} is not an integer; expected an integer >= {minimum}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NoiseConfigError(f"{name}={value!r} is not an integer; expected an integer >= {minimum}") from None
    if number < minimum:
        raise NoiseConfigError(f"{name}={value!r} is out of range; expected an integer >= {minimum}")
    return number


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split("+") if part.strip()]


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """What noise to inject, where, and how strong; built from `--model_args` strings."""

    noise: tuple[str, ...] = ()
    noise_scale: float = 0.0
    noise_scope: str = "per_token"
    noise_seed: int = 0
    embed_norm: str = "vocab"
    noise_positions: str = "all"
    noise_first_k: int | None = None
    noise_schedule: str = "constant"
    noise_scale_end: float | None = None
    noise_targets: tuple[str, ...] = ()
    noise_layer: int | None = None
    noise_dist: str = "gaussian"
    temperature_compensation: str = "none"
    t_base: float | None = None
    noise_dummy_tokens: int | None = None
    noise_dummy_position: str = "prefix"
    noise_dummy_init: str = "gaussian"
    random_prefix: int | None = None
    random_prefix_alphabet: str = PREFIX_ALPHABET
    weight_draw: str = "repeat"

    @property
    def perturbs(self) -> bool:
        """True when the noise types with a sigma will actually add something."""
        return bool(self.noise) and (self.noise_scale > 0 or (self.noise_scale_end or 0) > 0)

    @property
    def active(self) -> bool:
        """True when generations differ per sample: perturbing noise, dummy tokens (real positions even
        at sigma 0) or a random-string prefix."""
        return self.perturbs or "dummy" in self.noise or bool(self.random_prefix)

    @classmethod
    def from_args(cls, **args: Any) -> NoiseConfig:
        """Parse and validate raw model-arg values (strings, numbers or None)."""
        unknown = set(args) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise NoiseConfigError(f"unknown noise argument(s): {', '.join(sorted(unknown))}")
        get = args.get
        kinds = _split(get("noise", "none"))
        if kinds in ([], ["none"]):
            kinds = []
        for kind in kinds:
            _choice("noise", kind, (*KINDS, "none"))
        if "none" in kinds:
            raise NoiseConfigError("noise='none' cannot be combined with other noise types")
        if len(set(kinds)) != len(kinds):
            raise NoiseConfigError(f"noise={get('noise')!r} names a type twice")
        layer = get("noise_layer")
        if "hidden" in kinds and layer is None:
            raise NoiseConfigError("noise=hidden needs noise_layer=K (0 = right after the embeddings)")
        if layer is not None and "hidden" not in kinds:
            raise NoiseConfigError("noise_layer is only used with noise=hidden")
        first_k = get("noise_first_k")
        positions = _choice("noise_positions", get("noise_positions") or "all", POSITIONS)
        if (first_k is not None or positions != "all") and kinds and not set(kinds) & set(POSITIONAL_TYPES):
            raise NoiseConfigError(
                "noise_positions/noise_first_k apply to positional noise; use noise="
                f"{', '.join(POSITIONAL_TYPES)} (a weight draw has no positions)"
            )
        scope = _choice("noise_scope", get("noise_scope") or "per_token", SCOPES)
        if scope != "per_token" and kinds and "embedding" not in kinds:
            raise NoiseConfigError("noise_scope applies to noise=embedding; the other types draw per token")
        schedule = _choice("noise_schedule", get("noise_schedule") or "constant", SCHEDULES)
        scale_end = get("noise_scale_end")
        if schedule != "constant" and scale_end is None:
            raise NoiseConfigError(f"noise_schedule={schedule} needs noise_scale_end=")
        if schedule == "constant" and scale_end is not None:
            raise NoiseConfigError("noise_scale_end needs noise_schedule=linear, cosine or exp")
        if schedule != "constant" and kinds in (["weight"], ["dummy"]):
            raise NoiseConfigError(f"noise_schedule does not apply to noise={kinds[0]} (one draw per sample)")
        scale = _float("noise_scale", get("noise_scale") or 0.0)
        scale_end = None if scale_end is None else _float("noise_scale_end", scale_end)
        if schedule == "exp" and (scale == 0 or scale_end == 0):
            raise NoiseConfigError("noise_schedule=exp needs noise_scale > 0 and noise_scale_end > 0")
        targets = tuple(_split(get("noise_targets")))
        for item in targets:
            if item not in TARGET_KINDS + TARGET_DEPTHS and not any(ch in item for ch in "*?[."):
                raise NoiseConfigError(
                    f"noise_targets item {item!r} is not a group; valid groups: "
                    f"{', '.join(TARGET_KINDS + TARGET_DEPTHS)}, or a module-name glob such as '*.q_proj' "
                    "(items joined with '+')"
                )
        if targets and not {"weight", "activation"} & set(kinds):
            raise NoiseConfigError("noise_targets is only used with noise=weight or noise=activation")
        t_base = get("t_base")
        compensation = _choice("temperature_compensation", get("temperature_compensation") or "none", COMPENSATIONS)
        if t_base is not None and compensation != "auto":
            raise NoiseConfigError("t_base is only used with temperature_compensation=auto")
        t_base = None if t_base is None else _float("t_base", t_base)
        if t_base is not None and t_base <= 0:
            raise NoiseConfigError(f"t_base={t_base!r} is out of range; expected a float > 0")
        if compensation == "auto" and (positions == "generated" or first_k == 0):
            raise NoiseConfigError(
                "temperature_compensation=auto measures alpha on the prompt, which noise_positions=generated / "
                "noise_first_k=0 leave clean; use noise_positions=all or prompt"
            )
        weight_draw = _choice("weight_draw", get("weight_draw") or "repeat", WEIGHT_DRAWS)
        if get("weight_draw") is not None and "weight" not in kinds:
            raise NoiseConfigError("weight_draw only applies to noise=weight")
        dummy = _dummy_args(kinds, get)
        prefix, alphabet = _prefix_args(get)
        config = cls(
            noise=tuple(kinds),
            noise_scale=scale,
            noise_scope=scope,
            noise_seed=_int("noise_seed", 0 if get("noise_seed") is None else get("noise_seed")),
            embed_norm=_choice("embed_norm", get("embed_norm") or "vocab", EMBED_NORMS),
            noise_positions=positions,
            noise_first_k=None if first_k is None else _int("noise_first_k", first_k),
            noise_schedule=schedule,
            noise_scale_end=scale_end,
            noise_targets=targets,
            noise_layer=None if layer is None else _int("noise_layer", layer),
            noise_dist=_choice("noise_dist", get("noise_dist") or "gaussian", DISTS),
            temperature_compensation=compensation,
            t_base=t_base,
            **dummy,
            random_prefix=prefix,
            random_prefix_alphabet=alphabet,
            weight_draw=weight_draw,
        )
        # Table-drawn dummy rows alone have no sigma to set.
        needs_scale = kinds and not (kinds == ["dummy"] and dummy["noise_dummy_init"] == "table")
        if needs_scale and get("noise_scale") is None:
            # Without this a run labelled noise=<type> would silently inject nothing.
            raise NoiseConfigError(
                f"noise={'+'.join(kinds)} needs noise_scale=SIGMA (a float > 0, e.g. noise_scale=0.01); "
                "noise_scale=0 is the explicit zero-noise control"
            )
        return config

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for result provenance."""
        out = dataclasses.asdict(self)
        out["noise"] = list(self.noise)
        out["noise_targets"] = list(self.noise_targets)
        return out


def _dummy_args(kinds: list[str], get) -> dict[str, Any]:
    """noise_dummy_* values, refused without noise=dummy (they would silently do nothing)."""
    given = [k for k in ("noise_dummy_tokens", "noise_dummy_position", "noise_dummy_init") if get(k) is not None]
    if "dummy" not in kinds:
        if given:
            raise NoiseConfigError(f"{', '.join(given)} only apply to noise=dummy")
        return {}
    if get("noise_dummy_tokens") is None:
        raise NoiseConfigError("noise=dummy needs noise_dummy_tokens=K (an integer >= 1)")
    return {
        "noise_dummy_tokens": _int("noise_dummy_tokens", get("noise_dummy_tokens"), minimum=1),
        "noise_dummy_position": _choice(
            "noise_dummy_position", get("noise_dummy_position") or "prefix", DUMMY_POSITIONS
        ),
        "noise_dummy_init": _choice("noise_dummy_init", get("noise_dummy_init") or "gaussian", DUMMY_INITS),
    }


def _prefix_args(get) -> tuple[int | None, str]:
    """random_prefix=K (>= 1) and its alphabet (distinct characters, at least two)."""
    k, alphabet = get("random_prefix"), get("random_prefix_alphabet")
    if k is None:
        if alphabet is not None:
            raise NoiseConfigError("random_prefix_alphabet only applies with random_prefix=K")
        return None, PREFIX_ALPHABET
    k = _int("random_prefix", k, minimum=1)
    if isinstance(alphabet, (int, float)) and not isinstance(alphabet, bool):
        # lm-eval's --model_args parser turns "01" into the number 1: the characters are lost.
        raise NoiseConfigError(
            f"random_prefix_alphabet={alphabet!r} arrived as a number (lm-eval converts numeric model_args); "
            "include a non-digit character, or give it as a quoted string in a sweep config"
        )
    alphabet = PREFIX_ALPHABET if alphabet is None else str(alphabet)
    if len(set(alphabet)) < 2 or len(set(alphabet)) != len(alphabet) or any(c.isspace() for c in alphabet):
        raise NoiseConfigError(
            f"random_prefix_alphabet={alphabet!r} is not valid; expected at least two distinct, non-space characters"
        )
    return k, alphabet


# The model args that NoiseConfig owns (the rest of `--model_args` goes to the model class).
NOISE_ARGS = tuple(f.name for f in dataclasses.fields(NoiseConfig))
