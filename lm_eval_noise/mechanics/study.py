"""The measurements of the `mechanics` subcommand, per noise setting, prompt and sample.

Every prompt is continued greedily by the clean model (`analysis.measure.prepare`, as `alpha` does); the
clean and the noisy model then run teacher-forced over prompt + continuation, so positions align, and the
noisy model (and a temperature-sampled clean model) also continue the prompt freely. Sample n of prompt i
uses the seed `draw_seed(noise_seed, prompt, i, n, "mechanics")` through the very injection code of
`hf-noisy` (`NoiseRuntime`), so the measured noise is the noise evaluations use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lm_eval_noise.analysis.measure import PromptCase, Setting, draw_seed, prepare
from lm_eval_noise.mechanics.attention import attention_shift
from lm_eval_noise.mechanics.capture import Capture, capture_forward, generate, noisy_capture
from lm_eval_noise.mechanics.clusters import behaviour_signatures, cluster_points, is_code_prompt, outcome_ami
from lm_eval_noise.mechanics.propagation import effective_noise, relative_perturbation, site_names
from lm_eval_noise.mechanics.trajectories import Basis
from lm_eval_noise.noise import NoiseConfig, NoiseRuntime
from lm_eval_noise.noise.targets import decoder_layers

SEED_TASK = "mechanics"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to measure: settings, N samples per prompt, teacher-forced/generated positions, the
    temperature baseline (None: none), the prompt position whose embeddings are clustered and the layer
    of the position trajectories (None: the last decoder layer)."""

    settings: Sequence[Setting]
    samples: int
    positions: int
    temperature: float | None = 0.8
    noise_seed: int = 0
    cluster_position: int = 0
    trajectory_layer: int | None = None


@dataclasses.dataclass
class Results:
    attention: list[dict]
    propagation: list[dict]
    trajectories: list[dict]
    clusters: list[dict]
    summary: dict


def label(setting: Setting) -> str:
    """The noise column of every CSV: the type (or '+' combination), hidden noise with its layer."""
    return setting.noise + (f"@{setting.noise_layer}" if setting.noise_layer is not None else "")


def _texts(tokenizer, rows: torch.Tensor) -> list[str]:
    return [tokenizer.decode(row, skip_special_tokens=True) for row in rows]


class _Prompt:
    """One prompt's clean teacher-forced captures (by batch size) and its sample seeds."""

    def __init__(self, model: nn.Module, case: PromptCase, index: int, plan: Plan):
        self.model, self.case, self.plan = model, case, plan
        self.ids = case.teacher_forced(plan.positions)
        self.prompt_len = len(case.prompt_ids)
        self.seeds = [draw_seed(plan.noise_seed, case.prompt, index, n, SEED_TASK) for n in range(plan.samples)]
        self._clean: dict[int, Capture] = {}

    def clean(self, rows: int) -> Capture:
        """The clean capture over `rows` copies: the same batch shape as the noisy forward it is compared
        with, so scale 0 compares equal bit for bit."""
        if rows not in self._clean:
            self._clean[rows] = capture_forward(self.model, self.ids.expand(rows, -1), self.plan.positions, True)
        return self._clean[rows]

    def free_ids(self, generated: torch.Tensor) -> torch.Tensor:
        """prompt + generated[:-1] per row: its last `positions` positions choose the generated tokens."""
        prompt = self.case.prompt_ids[None].expand(len(generated), -1)
        return torch.cat([prompt, generated[:, :-1]], dim=1)


def _cluster_rows(plan: Plan, record: dict, setting: Setting, embeddings: torch.Tensor, texts: list[str],
                  prompt_index: int) -> tuple[list[dict], dict]:
    """clusters.csv rows and a summary for one prompt and setting."""
    base = {"noise": label(setting), "scale": setting.scale, "prompt": prompt_index}
    points = embeddings[:, plan.cluster_position].numpy()
    if setting.scale == 0 or np.ptp(points, axis=0).max() == 0:
        return [], {**base, "skipped": "the noise leaves the clustered embeddings unperturbed"}
    if len(points) < 3:
        return [], {**base, "skipped": "fewer than 3 samples"}
    code = is_code_prompt(record)
    outcomes = behaviour_signatures(record, texts) if code else texts
    clustering = cluster_points(points, seed=plan.noise_seed)
    ami = outcome_ami(clustering.labels, outcomes)
    summary = {**base, "k": clustering.k, "silhouette": clustering.silhouette,
               "outcome": "behaviour" if code else "text", "outcome_classes": len({repr(o) for o in outcomes}),
               "ami": ami, "pca_components": clustering.components,
               "pca_explained_variance": clustering.explained_variance}
    rows = []
    for cluster in range(clustering.k):
        members = np.flatnonzero(clustering.labels == cluster)
        rows.append({**{k: summary[k] for k in ("noise", "scale", "prompt", "k")}, "cluster": cluster,
                     "size": len(members), "silhouette": clustering.silhouette, "outcome": summary["outcome"],
                     "outcome_classes": summary["outcome_classes"],
                     "cluster_outcome_classes": len({repr(outcomes[m]) for m in members}), "ami": ami})
    return rows, summary


def run(model: nn.Module, tokenizer, records: Sequence[dict], plan: Plan,
        on_step: Callable[[], None] | None = None) -> Results:
    """All measurements; `on_step` is called after each (setting or temperature baseline, prompt)."""
    layers = len(decoder_layers(model)[1])
    traj_layer = layers if plan.trajectory_layer is None else plan.trajectory_layer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cases = [prepare(model, tokenizer, r["prompt"], plan.positions) for r in records]
    for case in cases:
        if not -len(case.prompt_ids) <= plan.cluster_position < len(case.prompt_ids):
            raise ValueError(f"--cluster-position {plan.cluster_position} is outside a prompt of "
                             f"{len(case.prompt_ids)} tokens; valid values: {-len(case.prompt_ids)}..{len(case.prompt_ids) - 1}")
    prompts = [_Prompt(model, case, i, plan) for i, case in enumerate(cases)]
    n, keep = plan.samples, plan.positions
    attn: dict[int, list] = {}  # (setting index) -> list over prompts of dict of [N, L]
    prop: dict[int, list] = {}
    paths = []  # (prompt, run, method, noise, scale, sample, residual [L+1, keep, d]) before projection
    cluster_rows, cluster_summaries, texts_out = [], [], []

    for p in prompts:  # the clean paths: teacher-forced and (greedy, the same tokens) generated
        clean = p.clean(n).residual[0, : layers + 1]
        for run_kind in ("teacher_forced", "generated"):
            paths.append((p, run_kind, "clean", "", 0.0, 0, clean))

    for s_index, setting in enumerate(plan.settings):
        # One runtime at a time: weight noise keeps a copy of the weights while its runtime lives.
        runtime = NoiseRuntime(model, setting.config(plan.noise_seed))
        for i, p in enumerate(prompts):
            rows = n if runtime.weight is None else 1
            clean = p.clean(rows)
            noisy = noisy_capture(model, runtime, p.ids.expand(n, -1), p.prompt_len, p.seeds, keep, True)
            assert clean.attention is not None and noisy.attention is not None  # captured with attention=True
            shift = attention_shift(clean.attention.expand_as(noisy.attention), noisy.attention)
            moved = relative_perturbation(clean.residual.expand_as(noisy.residual), noisy.residual)
            attn.setdefault(s_index, []).append(shift)
            prop.setdefault(s_index, []).append(moved)
            generated = generate(model, runtime, p.case.prompt_ids, p.seeds, keep, pad)
            free = noisy_capture(model, runtime, p.free_ids(generated), p.prompt_len, p.seeds, keep, False)
            for sample in range(n):
                paths.append((p, "teacher_forced", "noise", label(setting), setting.scale, sample,
                              noisy.residual[sample, : layers + 1]))
                paths.append((p, "generated", "noise", label(setting), setting.scale, sample,
                              free.residual[sample, : layers + 1]))
            texts = _texts(tokenizer, generated)
            texts_out.append({"noise": label(setting), "scale": setting.scale, "prompt": i, "texts": texts})
            rows_c, summary_c = _cluster_rows(plan, records[i], setting, free.embeddings, texts, i)
            cluster_rows += rows_c
            cluster_summaries.append(summary_c)
            if on_step is not None:
                on_step()
        del runtime

    if plan.temperature is not None:
        runtime = NoiseRuntime(model, NoiseConfig())
        for i, p in enumerate(prompts):
            generated = generate(model, runtime, p.case.prompt_ids, p.seeds, keep, pad, plan.temperature)
            free = noisy_capture(model, runtime, p.free_ids(generated), p.prompt_len, p.seeds, keep, False)
            for sample in range(n):
                paths.append((p, "generated", "temperature", "", plan.temperature, sample,
                              free.residual[sample, : layers + 1]))
            texts_out.append({"temperature": plan.temperature, "prompt": i, "texts": _texts(tokenizer, generated)})
            if on_step is not None:
                on_step()

    attention_rows, propagation_rows, per_setting = _layer_rows(plan, attn, prop, layers)
    trajectory_rows, bases = _trajectory_rows(paths, prompts, layers, traj_layer)
    summary = {
        "layers": layers,
        "trajectory_layer": traj_layer,
        "prompts": [{"prompt": c.prompt, "prompt_tokens": len(c.prompt_ids),
                     "continuation": tokenizer.decode(c.continuation)} for c in cases],
        "settings": per_setting,
        "trajectories": {view: {"explained_variance_ratio": b.explained_variance_ratio} for view, b in bases.items()},
        "clusters": cluster_summaries,
        "generations": texts_out,
    }
    return Results(attention_rows, propagation_rows, trajectory_rows, cluster_rows, summary)


def _layer_rows(plan: Plan, attn: dict, prop: dict, layers: int) -> tuple[list[dict], list[dict], list[dict]]:
    """attention.csv and propagation.csv rows (per sample and layer, averaged over prompts) and the
    per-setting summary (means over prompts and samples, per-prompt KL)."""
    attention_rows, propagation_rows, per_setting = [], [], []
    names = site_names(layers)
    for s_index, setting in enumerate(plan.settings):
        kl = torch.stack([a["kl"] for a in attn[s_index]])  # [P, N, L]
        ent_c = torch.stack([a["entropy_clean"] for a in attn[s_index]])
        ent_n = torch.stack([a["entropy_noisy"] for a in attn[s_index]])
        rel_norm = torch.stack([m["rel_norm"] for m in prop[s_index]])  # [P, N, L+2]
        rel_std = torch.stack([m["rel_std"] for m in prop[s_index]])
        for sample in range(plan.samples):
            for layer in range(layers):
                attention_rows.append({
                    "noise": label(setting), "scale": setting.scale, "sample": sample, "layer": layer + 1,
                    "kl": float(kl[:, sample, layer].mean()),
                    "entropy_clean": float(ent_c[:, sample, layer].mean()),
                    "entropy_noisy": float(ent_n[:, sample, layer].mean()),
                })
            for site, name in enumerate(names):
                r_std = float(rel_std[:, sample, site].mean())
                propagation_rows.append({
                    "noise": label(setting), "scale": setting.scale, "sample": sample, "layer": site, "site": name,
                    "rel_norm": float(rel_norm[:, sample, site].mean()), "rel_std": r_std,
                    "effective": effective_noise(r_std, setting.scale),
                })
        head_std = float(rel_std[:, :, -1].mean())
        per_setting.append({
            "noise": label(setting), "scale": setting.scale, "noise_layer": setting.noise_layer,
            "options": dict(setting.options),
            "kl_per_layer": kl.mean(dim=(0, 1)).tolist(),
            "kl_per_layer_per_prompt": kl.mean(dim=1).tolist(),
            "entropy_clean_per_layer": ent_c.mean(dim=(0, 1)).tolist(),
            "entropy_noisy_per_layer": ent_n.mean(dim=(0, 1)).tolist(),
            "rel_norm_per_site": rel_norm.mean(dim=(0, 1)).tolist(),
            "rel_std_per_site": rel_std.mean(dim=(0, 1)).tolist(),
            "rel_std_at_head": head_std,
            "effective_noise_at_head": effective_noise(head_std, setting.scale),
        })
    return attention_rows, propagation_rows, per_setting


def _trajectory_rows(paths: list, prompts: list[_Prompt], layers: int, traj_layer: int) -> tuple[list[dict], dict]:
    """Project every path onto the two bases fitted on the clean runs: last token over layers 0..L, and
    every generated position at `traj_layer`."""
    clean = torch.stack([p.clean(len(p.seeds)).residual[0, : layers + 1] for p in prompts])  # [P, L+1, T, d]
    bases = {
        "layers": Basis(clean.reshape(-1, clean.shape[-1]).numpy()),
        "positions": Basis(clean[:, traj_layer].reshape(-1, clean.shape[-1]).numpy()),
    }
    rows = []
    index = {id(p): i for i, p in enumerate(prompts)}
    for p, run_kind, method, noise, scale, sample, residual in paths:
        base = {"prompt": index[id(p)], "run": run_kind, "method": method, "noise": noise, "scale": scale,
                "sample": sample}
        last = bases["layers"].project(residual[:, -1].numpy())  # [L+1, 2]
        for layer, point in enumerate(last):
            rows.append({**base, "view": "layers", "layer": layer, "position": residual.shape[1] - 1,
                         "pc1": float(point[0]), "pc2": _second(point)})
        if run_kind == "generated":
            along = bases["positions"].project(residual[traj_layer].numpy())  # [T, 2]
            for position, point in enumerate(along):
                rows.append({**base, "view": "positions", "layer": traj_layer, "position": position,
                             "pc1": float(point[0]), "pc2": _second(point)})
    return rows, bases


def _second(point: np.ndarray) -> float:
    return float(point[1]) if len(point) > 1 else math.nan
