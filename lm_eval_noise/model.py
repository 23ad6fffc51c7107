"""`hf-noisy`: lm-eval's HFLM with seeded inference-time noise. Only the lm-eval glue lives here."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from transformers import LogitsProcessorList

from lm_eval_noise.noise import NOISE_ARGS, NoiseConfig, NoiseConfigError, NoiseRuntime, NoiseState
from lm_eval_noise.noise.sampling import SeededSampler, alpha, is_sampling, t_star, warpers
from lm_eval_noise.pretrained import missing_local_path
from lm_eval_noise.provenance import provenance
from lm_eval_noise.random_prefix import random_prefixes, user_turn_offset, with_prefix
from lm_eval_noise.seeding import repeat_seed, request_seeds
from lm_eval_noise.parsing import as_bool
from lm_eval_noise.request_rows import RequestRows
from lm_eval_noise.results.samples import SampleRecord, attach, detach

log = logging.getLogger(__name__)

_SAMPLING_KEYS = ("do_sample", "temperature", "top_k", "top_p", "min_p")
# torch.compile settings of fast_decode's decode step. Static shapes: a step compiles once per batch
# shape (the static cache only grows, and lm-eval sends the longest prompts first).
FAST_DECODE_COMPILE: dict[str, Any] = {"fullgraph": False, "dynamic": False}
_HFLM_ARGS = frozenset(inspect.signature(HFLM.__init__).parameters)


@dataclass(frozen=True)
class SamplingPlan:
    """How one batch picks its tokens (hf-noisy's `_sampling_plan`)."""

    sampling: bool  # seeded sampling at t_base (else greedy, unless compensation samples at T*)
    t_base: float | None  # the temperature sampled at, or compensation's base temperature
    compensate: bool  # temperature_compensation=auto: sample at T* = t_base * sqrt(1 + alpha)
    truncation: list = field(default_factory=list)  # top-k / top-p / min-p warpers, transformers' order
    passthrough: dict[str, Any] = field(default_factory=dict)  # sampling kwargs transformers sees


def _bnb_config(load_in_8bit: bool, load_in_4bit: bool, kwargs: dict):
    """transformers 5 dropped load_in_8bit/4bit kwargs: build the BitsAndBytesConfig they meant."""
    bnb_keys = [k for k in kwargs if k.startswith("bnb_4bit_") or k.startswith("llm_int8_")]
    if not (load_in_8bit or load_in_4bit):
        if bnb_keys:
            raise NoiseConfigError(f"{', '.join(bnb_keys)} need load_in_4bit=true or load_in_8bit=true")
        return None
    if load_in_8bit and load_in_4bit:
        raise NoiseConfigError("load_in_8bit and load_in_4bit are exclusive; choose one")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise NoiseConfigError(
            "load_in_8bit/load_in_4bit need bitsandbytes: pip install 'lm-eval-noise[quant]'"
        ) from None
    from lm_eval.models.utils_hf import get_dtype
    from transformers import BitsAndBytesConfig

    options = {k: kwargs.pop(k) for k in bnb_keys}
    if "bnb_4bit_compute_dtype" in options:
        options["bnb_4bit_compute_dtype"] = get_dtype(options["bnb_4bit_compute_dtype"])
    return BitsAndBytesConfig(load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit, **options)


def _check_spelling(kwargs: dict) -> None:
    """A misspelt hf-noisy argument would reach from_pretrained as an opaque TypeError: name it here."""
    ours = (*NOISE_ARGS, "seeded_sampling", "clean_ppl", "fast_decode", "load_in_8bit", "load_in_4bit")
    for key in kwargs:
        if key in NOISE_ARGS or key in _HFLM_ARGS:
            continue
        close = difflib.get_close_matches(key, ours, n=1, cutoff=0.8)
        if key.startswith("noise") or close:
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise NoiseConfigError(f"unknown argument {key}{hint}; hf-noisy arguments: {', '.join(ours)}")


def _out_of_memory(error: BaseException | None) -> bool:
    """Whether an out-of-memory error is the error or its cause (compilers wrap what they hit)."""
    while error is not None:
        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
        error = error.__cause__ or error.__context__
    return False


@register_model("hf-noisy")
class HFNoisyLM(HFLM):
    """HFLM whose generations carry per-sample seeded noise (embedding, weight, activation, hidden, lm_head)."""

    def __init__(
        self,
        pretrained: Any,
        seeded_sampling: bool = True,
        clean_ppl: bool = False,
        fast_decode: bool = False,
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_spelling(kwargs)
        # Validate everything before any weights load.
        config = NoiseConfig.from_args(**{k: kwargs.pop(k) for k in NOISE_ARGS if k in kwargs})
        self.seeded_sampling = as_bool("seeded_sampling", seeded_sampling, NoiseConfigError)
        self.clean_ppl = as_bool("clean_ppl", clean_ppl, NoiseConfigError)
        self.fast_decode = as_bool("fast_decode", fast_decode, NoiseConfigError)
        self._quantization = _bnb_config(
            as_bool("load_in_8bit", load_in_8bit, NoiseConfigError), as_bool("load_in_4bit", load_in_4bit, NoiseConfigError), kwargs
        )
        self._check_compensation(config)
        if problem := missing_local_path(pretrained):
            raise NoiseConfigError(problem)
        super().__init__(pretrained=pretrained, **kwargs)
        if self.backend == "seq2seq" and (config.active or self.seeded_sampling):
            if config.active:
                raise NoiseConfigError("hf-noisy injects noise into decoder-only (causal) models; this one is seq2seq")
            log.warning("hf-noisy: seq2seq model: sampling uses transformers' global RNG (seeded_sampling=false)")
            self.seeded_sampling = False
        self.set_noise(config)
        self._rows: RequestRows | None = None  # the rows of the generate_until call under way
        self._warned_loglikelihood = False
        # Rendered chat prompt -> where its last user turn's content starts (random_prefix goes there).
        self._user_turns: dict[str, int | None] = {}
        self._warned_prefix = False

    # -- configuration -------------------------------------------------------------------------

    def set_noise(self, config: NoiseConfig | None = None, **noise_args: Any) -> None:
        """Switch the noise configuration in place (no weight reload), e.g. between sweep methods."""
        config = config if config is not None else NoiseConfig.from_args(**noise_args)
        self._check_compensation(config)
        self._refuse_cache(getattr(self, "cache_hook", None), config)
        self.noise_config = config
        self.noise = NoiseRuntime(self.model, config)
        if self.fast_decode and getattr(self.model, "_compiled_call", None) is not None:
            # New hooks mean a new decode graph: start afresh rather than pile recompiles up to dynamo's limit.
            torch._dynamo.reset()

    def _check_compensation(self, config: NoiseConfig) -> None:
        if config.temperature_compensation == "auto" and not self.seeded_sampling:
            raise NoiseConfigError("temperature_compensation=auto samples at T* itself; it needs seeded_sampling=true")

    def _create_model(self, *args: Any, quantization_config: Any = None, **kwargs: Any) -> None:
        super()._create_model(*args, quantization_config=self._quantization or quantization_config, **kwargs)

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["noise"] = provenance(self.noise_config, self.noise.reference_norm, self.seeded_sampling)
        return info

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        rendered = super().apply_chat_template(chat_history, add_generation_prompt)
        if self.noise_config.random_prefix:  # remember where the user turn starts: the prefix goes there
            def render(history: list[dict]) -> str:
                return HFLM.apply_chat_template(self, history, add_generation_prompt)

            self._user_turns[rendered] = user_turn_offset(render, chat_history, rendered)
        return rendered

    def set_cache_hook(self, cache_hook) -> None:
        self._refuse_cache(cache_hook, self.noise_config)
        super().set_cache_hook(cache_hook)

    @staticmethod
    def _refuse_cache(cache_hook, config: NoiseConfig) -> None:
        if getattr(cache_hook, "dbdict", None) is not None and config.active:
            raise NoiseConfigError(
                "--use_cache cannot be combined with noise: the cache returns one stored answer for every "
                "greedy repeat, so all K noisy samples would be identical. Drop --use_cache (or set noise=none)."
            )

    # -- lm-eval request types -----------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self._warn_clean_scoring()
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self._warn_clean_scoring()
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def _warn_clean_scoring(self) -> None:
        if self.noise_config.active and not self._warned_loglikelihood:
            log.warning("hf-noisy: noise applies to generation; loglikelihood requests are scored by the clean model")
            self._warned_loglikelihood = True

    def _needs_seeding(self, requests) -> bool:
        if self.noise_config.active:
            return True
        # Decided on the kwargs as lm-eval normalises them (temperature > 0 alone means sampling).
        return self.seeded_sampling and any(
            is_sampling(kwargs["do_sample"], kwargs.get("temperature"))
            for kwargs in (normalize_gen_kwargs(r.args[1], self.max_gen_toks) for r in requests)
        )

    def _check_requests(self, requests) -> None:
        """Refuse or fit what would otherwise fail mid-run or be mislabelled, before the first batch."""
        config = self.noise_config
        kwargs_of = {id(r.args[1]): r.args[1] for r in requests}
        normalised = {key: normalize_gen_kwargs(kw, self.max_gen_toks) for key, kw in kwargs_of.items()}
        if config.active and config.temperature_compensation == "auto" and config.t_base is None and any(
            not is_sampling(kw["do_sample"], kw.get("temperature")) for kw in normalised.values()
        ):
            raise NoiseConfigError(
                "temperature_compensation=auto on a greedy task needs t_base=T, the base temperature that "
                "T* = T*sqrt(1+alpha) scales (e.g. t_base=0.8); sampling tasks use their own temperature"
            )
        if self.backend != "causal":
            return
        too_long = {key: kw["max_gen_toks"] for key, kw in normalised.items() if kw["max_gen_toks"] >= self.max_length}
        if not too_long:
            return
        # lm-eval would stop here with an assertion; fit the generation to what the prompts leave.
        # Dummy tokens are extra positions; a k-character prefix and its separator take at most k + 1 tokens.
        extra = (config.noise_dummy_tokens or 0) + (config.random_prefix + 1 if config.random_prefix else 0)
        longest = max(len(self.tok_encode(r.args[0])) for r in requests) + extra
        room = self.max_length - longest
        asked = max(too_long.values())
        if room < 1:
            raise NoiseConfigError(
                f"max_gen_toks={asked} does not fit: the model's maximum length is {self.max_length} tokens and the "
                f"longest prompt alone has {longest}; pass a model with a longer context or max_length= in model_args"
            )
        log.warning("hf-noisy: max_gen_toks=%d does not fit the model's maximum length (%d tokens); generating at "
                    "most %d tokens (the room the longest prompt, %d tokens, leaves)", asked, self.max_length, room,
                    longest)
        for key in too_long:
            kwargs_of[key]["max_gen_toks"] = room

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        detach(requests)
        if requests:
            self._check_requests(requests)
        seeded = bool(requests) and self._needs_seeding(requests)
        if not seeded and not self.clean_ppl:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        seeds = request_seeds(requests, self.noise_config.noise_seed) if seeded else []
        self._rows = rows = RequestRows(len(requests), seeds)
        try:
            # Unseeded (clean_ppl alone): HFLM generates as usual; the rows only carry the perplexity below.
            results = (self._generate_seeded(requests, disable_tqdm) if seeded
                       else super().generate_until(requests, disable_tqdm=disable_tqdm))
        finally:
            rows.done()
            self._rows = None
        if self.clean_ppl:
            for i, ppl in enumerate(self._clean_perplexities(requests, results)):
                rows.record(i, clean_ppl=math.nan if ppl is None else ppl)  # NaN: measured, undefined
        for req, record in zip(requests, rows.records, strict=True):
            # Per-sample provenance rides in the request's generation args, which lm-eval logs per doc.
            attach(req.args[1], SampleRecord(**record))
        return results

    def _prefixed(self, request, prefix: str):
        """A copy of the request whose context carries the prefix (in the user turn of a chat prompt)."""
        context = request.args[0]
        offset = self._user_turns.get(context, 0)
        if offset is None:
            offset = 0
            if not self._warned_prefix:
                log.warning("hf-noisy: cannot find the user turn in this chat template's output; "
                            "random_prefix goes at the start of the prompt")
                self._warned_prefix = True
        return dataclasses.replace(request, arguments=(with_prefix(context, prefix, offset), *request.args[1:]))

    def _active_rows(self) -> RequestRows:
        if self._rows is None:
            raise RuntimeError("hf-noisy: no seeded generate_until call is under way")
        return self._rows

    def _generate_seeded(self, requests, disable_tqdm: bool) -> list[str]:
        config, rows = self.noise_config, self._active_rows()
        if config.random_prefix:  # drawn from the sample's seed, which the unprefixed request decides
            prefixes = random_prefixes([seed for seed, _ in rows.seeds], config.random_prefix,
                                       config.random_prefix_alphabet)
            requests = [self._prefixed(req, prefix) for req, prefix in zip(requests, prefixes, strict=True)]
            for i, prefix in enumerate(prefixes):
                rows.record(i, random_prefix=prefix)
        # One HFLM call per generation-kwargs group (and per weight draw): inside a call, rows are
        # matched to requests by context string (RequestRows).
        draws = self._repeat_draws(requests)
        groups: dict[tuple[int | None, str], list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[(draws[i], json.dumps(req.args[1], sort_keys=True, default=str))].append(i)
            if draws[i] is not None:
                rows.record(i, weight_draw=f"{draws[i]:016x}")
        results: list[str] = [""] * len(requests)
        weight = self.noise.weight
        with weight.held() if weight is not None else contextlib.nullcontext():
            for (draw, _), indices in groups.items():
                if draw is not None:
                    assert weight is not None  # draws exist only under weight noise
                    weight.apply(draw)  # held until the next draw or the end of the call
                rows.expect([(i, requests[i].args[0]) for i in indices])
                outputs = super().generate_until([requests[i] for i in indices], disable_tqdm=disable_tqdm)
                for i, text in zip(indices, outputs, strict=True):
                    results[i] = text
        return results

    def _repeat_draws(self, requests) -> list[int | None]:
        """Each request's weight draw under weight_draw=repeat: keyed by (noise_seed, task, repeat index)
        alone, so every doc of a repeat shares it whatever the batch; None for every other noise."""
        config = self.noise_config
        if self.noise.weight is None or config.weight_draw != "repeat":
            return [None] * len(requests)
        return [repeat_seed(config.noise_seed, getattr(req, "task_name", None) or "", repeat)
                for req, (_, repeat) in zip(requests, self._active_rows().seeds, strict=True)]

    def tok_batch_encode(self, strings, *args: Any, **kwargs: Any):
        if self._rows is not None:
            self._rows.encoded(strings)
        return super().tok_batch_encode(strings, *args, **kwargs)

    # -- generation ----------------------------------------------------------------------------

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        batch = self._rows.rows() if self._rows is not None else None
        if self.fast_decode:
            try:
                return self._generate_batch(batch, context, max_length, stop, **generation_kwargs, **self._fast_kwargs())
            except (RuntimeError, ValueError, NotImplementedError, TypeError) as error:
                if _out_of_memory(error):
                    raise  # a batch too large for the device, not a compile problem: eager would not help
                reason = " ".join(line.strip() for line in str(error).splitlines()[:2] if line.strip())
                log.warning("hf-noisy: fast_decode is unavailable here (%s: %s); decoding eagerly from now on",
                            type(error).__name__, reason[:300])
                self.fast_decode = False
        return self._generate_batch(batch, context, max_length, stop, **generation_kwargs)

    def _fast_kwargs(self) -> dict[str, Any]:
        """Static KV cache, and transformers compiles the decode step with the noise hooks inside."""
        from transformers import CompileConfig

        config = CompileConfig(**FAST_DECODE_COMPILE)
        config._compile_all_devices = True  # transformers compiles only on CUDA/XPU unless told so
        return {"cache_implementation": "static", "compile_config": config}

    def _generate_batch(self, batch, context, max_length: int, stop: list[str], **generation_kwargs):
        if batch is None:  # not a seeded generate_until call: HFLM's own generation
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        mask = generation_kwargs.pop("attention_mask", None)
        if mask is None:
            mask = torch.ones_like(context)
        plan = self._sampling_plan({k: generation_kwargs.pop(k, None) for k in _SAMPLING_KEYS})
        rows = self._active_rows()
        seeds = torch.tensor([rows.seeds[i][0] for i in batch], dtype=torch.int64, device=context.device)
        max_new = max_length - context.shape[1]
        if self.noise.weight is None or self.noise_config.weight_draw == "repeat":
            out, records = self._generate(context, mask, seeds, max_new, stop, plan, generation_kwargs)
        else:
            out, records = self._generate_per_sample(context, mask, seeds, max_new, stop, plan, generation_kwargs)
        for i, record in zip(batch, records, strict=True):
            seed, repeat = rows.seeds[i]
            rows.record(i, repeat=repeat, seed=f"{seed:016x}", **record)
        return out

    def _generate_per_sample(self, context, mask, seeds, max_new, stop, plan, generation_kwargs):
        """weight_draw=sample: generate each row alone, unpadded, under its own draw."""
        rows, records = [], []
        for r in range(context.shape[0]):
            start = int((mask[r] == 0).sum())
            out, rec = self._generate(
                context[r : r + 1, start:], mask[r : r + 1, start:], seeds[r : r + 1],
                max_new, stop, plan, generation_kwargs, draw=int(seeds[r]),
            )
            rows.append(torch.cat([context[r], out[0, context.shape[1] - start :]]))
            records.extend(rec)
        width = max(len(row) for row in rows)
        padded = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=context.dtype, device=context.device)
        for r, row in enumerate(rows):
            padded[r, : len(row)] = row
        return padded, records

    def _generate(self, context, mask, seeds, max_new, stop, plan: SamplingPlan, generation_kwargs,
                  draw: int | None = None):
        """One batch under the noise that is on (and, weight_draw=sample, under the row's weight `draw`):
        dummy positions, temperature compensation, seeded sampling."""
        clean = self._clean_last_logits(context, mask) if plan.compensate else None  # before any draw
        layout, columns = None, None
        if self.noise.dummy is not None:
            layout = self.noise.dummy.layout(mask)
            context, mask = layout.extend(context, mask, self.noise.dummy.ids(seeds))
            columns = layout.columns

        def state() -> NoiseState:  # fresh per forward pass: it tracks the positions it has noised
            return NoiseState(self.noise_config, seeds, mask, max_new, dummy_columns=columns)

        weight = self.noise.weight
        with weight.perturbed(draw) if weight is not None and draw is not None else contextlib.nullcontext():
            temperatures, records = self._temperatures(plan, seeds, clean, context, mask, state)
            # A copy: in the per-sample loop every row shares generation_kwargs.
            processors = LogitsProcessorList(generation_kwargs.get("logits_processor") or [])
            if plan.sampling or plan.compensate:
                processors.append(SeededSampler(seeds, temperatures, context.shape[1], plan.truncation))
            with self.noise.attached(state()):
                out = super()._model_generate(
                    context,
                    context.shape[1] + max_new,
                    stop,
                    attention_mask=mask,
                    logits_processor=processors,
                    **plan.passthrough,
                    **{k: v for k, v in generation_kwargs.items() if k != "logits_processor"},
                )
        if layout is not None:
            out = layout.strip(out)  # lm-eval slices the continuation at the unextended context's width
        return out, records

    def _temperatures(self, plan: SamplingPlan, seeds, clean, context, mask, state) -> tuple[torch.Tensor, list[dict]]:
        """Each row's sampling temperature, and its record: t_base, or under temperature_compensation=auto
        T* = t_base * sqrt(1 + alpha), alpha measured on this prompt's next-token logits (noisy vs clean)."""
        records: list[dict[str, Any]] = [{} for _ in range(len(seeds))]
        if clean is None or plan.t_base is None:  # compensation needs both (SamplingPlan.compensate)
            return torch.full((len(seeds),), float(plan.t_base or 1.0), device=seeds.device), records
        with self.noise.attached(state()):
            noisy = self._last_logits(context, mask)
        alphas = alpha(clean, noisy)
        temperatures = t_star(plan.t_base, alphas)
        for rec, a, t in zip(records, alphas.tolist(), temperatures.tolist(), strict=True):
            rec.update(alpha=a, t_star=t)
        return temperatures, records

    def _clean_last_logits(self, context, mask) -> torch.Tensor:
        """The next-token logits with no noise at all (weight noise suspended): alpha's reference."""
        weight = self.noise.weight
        with weight.suspended() if weight is not None else contextlib.nullcontext():
            return self._last_logits(context, mask)

    def _sampling_plan(self, sampling_args: dict) -> SamplingPlan:
        """How a batch picks its tokens: seeded sampling at the request's (or compensated) temperature, or
        greedy; with seeded sampling transformers itself decodes greedily over SeededSampler's scores."""
        config = self.noise_config
        sampling = self.seeded_sampling and is_sampling(sampling_args["do_sample"], sampling_args["temperature"])
        settings = self._sampling_settings(sampling_args)
        t_base = settings["temperature"] if sampling else config.t_base
        return SamplingPlan(
            sampling=sampling,
            t_base=t_base,
            compensate=config.active and config.temperature_compensation == "auto" and t_base is not None,
            truncation=warpers(settings["top_k"], settings["top_p"], settings["min_p"]),
            passthrough=(
                {"do_sample": False}
                if self.seeded_sampling
                else {k: v for k, v in sampling_args.items() if v is not None}
            ),
        )

    def _sampling_settings(self, sampling_args: dict) -> dict:
        """Temperature/top-k/top-p/min-p as transformers resolves them: the request's value, else the
        model's generation config, else transformers' own default (e.g. top_k=50)."""
        from transformers import GenerationConfig

        defaults_of = getattr(GenerationConfig, "_get_default_generation_params", None)  # transformers >= 5
        library = defaults_of() if defaults_of else GenerationConfig().to_dict()
        model = self.model.generation_config
        out = {}
        for key in ("temperature", "top_k", "top_p", "min_p"):
            value = sampling_args.get(key)
            for fallback in (getattr(model, key, None), library.get(key)):
                if value is None:
                    value = fallback
            out[key] = value
        return out

    @torch.no_grad()
    def _last_logits(self, context, mask) -> torch.Tensor:
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}
            out = self.model(input_ids=context, attention_mask=mask, position_ids=positions, **keep)
        return out.logits[:, -1].float()

    def _clean_perplexities(self, requests, continuations: list[str]) -> list[float | None]:
        """Perplexity of each generated continuation under the same model with noise off."""
        pairs, where = [], []
        for i, (req, cont) in enumerate(zip(requests, continuations, strict=True)):
            if cont:
                ctx_enc, cont_enc = self._encode_pair(req.args[0], cont)
                pairs.append(((req.args[0], cont), ctx_enc, cont_enc))
                where.append((i, len(cont_enc)))
        out: list[float | None] = [None] * len(requests)
        if pairs:
            scores = self._loglikelihood_tokens(pairs, disable_tqdm=True)
            for (i, n), (logprob, _) in zip(where, scores, strict=True):
                out[i] = math.exp(-logprob / max(n, 1))
        return out
