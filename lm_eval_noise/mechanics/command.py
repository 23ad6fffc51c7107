"""`python -m lm_eval_noise mechanics`: attention shift, perturbation propagation, hidden-state trajectories
and embedding clusters of `hf-noisy`'s noise, per noise type and scale (docs/mechanics.md)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lm_eval.utils import simple_parse_args_string

from lm_eval_noise.parsing import int_at_least, noise_list, non_negative_floats, positive_float
from lm_eval_noise.analysis.loading import load_model, parse_model_args
from lm_eval_noise.analysis.measure import Setting
from lm_eval_noise.analysis.prompts import read_prompt_records
from lm_eval_noise.mechanics import plots, report, study
from lm_eval_noise.noise import NoiseConfigError

# hf-noisy arguments that keep teacher-forced positions aligned with the clean run (dummy tokens and a
# random prefix add positions; schedules and compensation act per decode step, not per forward).
NOISE_OPTIONS = ("noise_scope", "embed_norm", "noise_positions", "noise_first_k", "noise_targets", "noise_dist")


def noise_options(text: str) -> tuple[tuple[str, object], ...]:
    """`key=value,...` of further hf-noisy noise arguments ('+' joins several noise_targets)."""
    try:
        parsed = simple_parse_args_string(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value[,key=value]: {err}") from None
    unknown = sorted(set(parsed) - set(NOISE_OPTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown)} cannot be set here; valid keys: {', '.join(NOISE_OPTIONS)} "
            "(noise, noise_scale, noise_layer and noise_seed have options of their own)"
        )
    return tuple(sorted((key, value) for key, value in parsed.items()))


def _temperature(text: str) -> float | None:
    """A sampling temperature > 0, or 0 for no temperature baseline."""
    if text.strip() in ("0", "0.0", "none"):
        return None
    return positive_float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise mechanics",
        description="Why noise changes the output: KL of attention maps, relative perturbation of the residual "
        "stream per layer, PCA trajectories of hidden states (clean, noisy, temperature-sampled) and k-means "
        "clusters of the perturbed embeddings, teacher-forced on the clean greedy continuation.",
    )
    add = parser.add_argument
    add("--model_args", required=True, help="pretrained=PATH|tiny[,dtype=,device=,trust_remote_code=,revision=]")
    add("--prompts", required=True, help="text file (one prompt per line) or JSONL with a 'prompt' field "
        "(and 'test' + 'entry_point' for HumanEval-style code prompts)")
    add("--noise", type=noise_list, default=["embedding"], help="comma-separated noise types (default: embedding)")
    add("--scales", type=non_negative_floats, default=[0.0, 0.01, 0.05], help="comma-separated noise_scale values")
    add("--noise_args", type=noise_options, default=(), help=f"further hf-noisy arguments: {', '.join(NOISE_OPTIONS)}")
    add("--noise-layer", type=int_at_least(0), default=None, help="layer K for hidden noise (default: middle)")
    add("--samples", type=int_at_least(1), default=8, help="noise draws (and temperature samples) per prompt")
    add("--positions", type=int_at_least(2), default=16, help="continuation tokens: teacher-forced and generated")
    add("--temperature", type=_temperature, default=0.8, help="temperature of the sampled baseline (0: none)")
    add("--cluster-position", type=int, default=0, help="prompt position whose perturbed embeddings are clustered "
        "(negative: from the end; -1 is the last prompt token)")
    add("--trajectory-layer", type=int_at_least(0), default=None,
        help="residual-stream layer of the position trajectories (0: embeddings; default: the last decoder layer)")
    add("--noise-seed", type=int_at_least(0), default=0, help="base seed of the noise draws")
    add("--output", default="results/mechanics", help="folder for the CSVs, PNGs and mechanics.json")
    return parser


def _uses_hidden(item: str) -> bool:
    return "hidden" in item.split("+")


def _settings(args: argparse.Namespace, layer: int | None) -> list[Setting]:
    return [
        Setting(item, scale, layer if _uses_hidden(item) else None, args.noise_args)
        for item in args.noise
        for scale in args.scales
    ]


def main(argv: list[str]) -> int:
    """Entry point of `python -m lm_eval_noise mechanics`."""
    from tqdm import tqdm

    from lm_eval_noise.mechanics.capture import use_eager_attention
    from lm_eval_noise.noise.targets import decoder_layers

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.noise_layer is not None and not any(_uses_hidden(item) for item in args.noise):
        parser.error("--noise-layer is only used with hidden noise (add hidden to --noise)")
    try:
        records = read_prompt_records(args.prompts)
        model_args = parse_model_args(args.model_args)
        for setting in _settings(args, 1):  # every value checked before any weights load
            setting.config(args.noise_seed)
    except (ValueError, NoiseConfigError) as err:
        parser.error(str(err))
    try:
        model, tokenizer = load_model(model_args)
    except OSError as err:  # missing path or files, or a hub name while offline
        parser.error(f"--model_args: cannot load pretrained={model_args['pretrained']!r}: {err}")
    depth = len(decoder_layers(model)[1])
    if args.trajectory_layer is not None and args.trajectory_layer > depth:
        parser.error(f"--trajectory-layer {args.trajectory_layer} is beyond the model; valid values: 0..{depth}")
    previous = use_eager_attention(model)
    if previous != "eager":
        print(f"attention: switched from {previous} to eager attention for this analysis "
              f"({previous} returns no attention weights); the noise and the outputs are unchanged")
    layer = args.noise_layer if args.noise_layer is not None else max(1, depth // 2)
    plan = study.Plan(_settings(args, layer), args.samples, args.positions, args.temperature, args.noise_seed,
                      args.cluster_position, args.trajectory_layer)
    steps = len(records) * (len(plan.settings) + (plan.temperature is not None))
    with tqdm(total=steps, desc="mechanics", disable=None) as bar:
        try:
            results = study.run(model, tokenizer, records, plan, on_step=bar.update)
        except (ValueError, NoiseConfigError) as err:  # model-dependent values, e.g. a layer beyond the model
            parser.error(str(err))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("attention.csv", results.attention), ("propagation.csv", results.propagation),
                       ("trajectories.csv", results.trajectories), ("clusters.csv", results.clusters)):
        report.write_csv(out / name, report.FILES[name], rows)
    payload = {
        "model_args": model_args,
        "attention_implementation": {"model": previous, "analysis": "eager"},
        "plan": {"noise": args.noise, "scales": args.scales, "noise_args": dict(args.noise_args),
                 "noise_layer": layer if any(_uses_hidden(i) for i in args.noise) else None,
                 "samples": args.samples, "positions": args.positions, "temperature": args.temperature,
                 "noise_seed": args.noise_seed, "cluster_position": args.cluster_position,
                 "seed_task": study.SEED_TASK},
        **results.summary,
    }
    report.write_json(out / "mechanics.json", payload)
    plots.plot_attention(out / "attention.png", results.attention)
    plots.plot_propagation(out / "propagation.png", results.propagation)
    explained = {view: v["explained_variance_ratio"] for view, v in results.summary["trajectories"].items()}
    plots.plot_trajectories(out / "trajectories.png", results.trajectories, explained)
    _print_summary(results.summary)
    print(f"wrote {out}/: attention.csv/.png, propagation.csv/.png, trajectories.csv/.png, clusters.csv, mechanics.json")
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Noise mechanics (means over prompts and samples)")
    for name in ("noise", "σ", "max KL (layer)", "‖Δh‖/‖h‖ layer 1", "‖Δh‖/‖h‖ head", "effective at head"):
        table.add_column(name, justify="left" if name == "noise" else "right")
    for s in summary["settings"]:
        kl = s["kl_per_layer"]
        top = max(range(len(kl)), key=kl.__getitem__)
        eff = s["effective_noise_at_head"]
        table.add_row(s["noise"], f"{s['scale']:g}", f"{kl[top]:.3g} ({top + 1})", f"{s['rel_norm_per_site'][1]:.3g}",
                      f"{s['rel_norm_per_site'][-1]:.3g}", "—" if math.isnan(eff) else f"{eff:.3g}")
    Console().print(table)
