"""Noise injection points behind one interface, keyed to each sample by counter-based streams."""

from lm_eval_noise.noise.config import NOISE_ARGS, NOISE_TYPES, NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.runtime import NoiseRuntime
from lm_eval_noise.noise.state import NoiseState

__all__ = ["NOISE_ARGS", "NOISE_TYPES", "NoiseConfig", "NoiseConfigError", "NoiseRuntime", "NoiseState"]
