"""`python -m lm_eval_noise alpha`: alpha and T* per noise type and scale, and alpha per token position."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_noise.analysis.loading import load_model, parse_model_args
from lm_eval_noise.analysis.measure import Setting, measure, prepare
from lm_eval_noise.analysis.prompts import read_prompts
from lm_eval_noise.analysis.report import print_table, summarize, write_csv, write_json, write_plot
from lm_eval_noise.noise import NOISE_TYPES, NoiseConfigError
from lm_eval_noise.parsing import int_at_least, noise_list, non_negative_floats, positive_float

JSON_NAME, CSV_NAME, PLOT_NAME = "alpha.json", "alpha.csv", "alpha_positions.png"


def build_parser() -> argparse.ArgumentParser:
    """The `alpha` subcommand's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise alpha",
        description="Measure alpha = Var(noisy - clean logits) / Var(clean logits) and T* = T_base*sqrt(1+alpha) "
        "per noise type and scale, at the last prompt position and per position of a teacher-forced continuation.",
    )
    add = parser.add_argument
    add("--model_args", required=True, help="pretrained=PATH|tiny[,dtype=,device=,trust_remote_code=,revision=]")
    add("--prompts", required=True, help="text file (one prompt per line) or JSONL with a 'prompt' field")
    add("--noise", type=noise_list, default=list(NOISE_TYPES), help="comma-separated noise types (default: all)")
    add("--scales", type=non_negative_floats, default=[0.001, 0.01, 0.1], help="comma-separated noise_scale values")
    add("--draws", type=int_at_least(1), default=3, help="noise draws per prompt (default 3)")
    add("--t-base", type=positive_float, default=0.8, help="T_base of T* = T_base*sqrt(1+alpha)")
    add("--noise-layer", type=int_at_least(0), default=None, help="layer K for hidden noise (default: middle)")
    add("--positions", type=int_at_least(1), default=32, help="teacher-forced positions N (default 32)")
    add("--noise-seed", type=int_at_least(0), default=0, help="base seed of the noise draws")
    add("--output-dir", default="results/alpha", help="where alpha.json, alpha.csv and the plot go")
    return parser


def _uses_hidden(item: str) -> bool:
    return "hidden" in item.split("+")


def _settings(args: argparse.Namespace, model) -> list[Setting]:
    """One Setting per noise item and scale; hidden noise gets --noise-layer or the middle decoder layer."""
    from lm_eval_noise.noise.targets import decoder_layers

    layer = args.noise_layer if args.noise_layer is not None else max(1, len(decoder_layers(model)[1]) // 2)
    return [
        Setting(item, scale, layer if _uses_hidden(item) else None) for item in args.noise for scale in args.scales
    ]


def main(argv: list[str]) -> int:
    """Entry point of `python -m lm_eval_noise alpha`."""
    from tqdm import tqdm

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.noise_layer is not None and not any(_uses_hidden(item) for item in args.noise):
        parser.error("--noise-layer is only used with hidden noise (add hidden to --noise)")
    try:
        prompts = read_prompts(args.prompts)
        model_args = parse_model_args(args.model_args)
    except ValueError as err:
        parser.error(str(err))
    try:
        model, tokenizer = load_model(model_args)
    except OSError as err:  # missing path or files, or a hub name while offline
        parser.error(f"--model_args: cannot load pretrained={model_args['pretrained']!r}: {err}")
    settings = _settings(args, model)
    cases = [prepare(model, tokenizer, p, args.positions) for p in tqdm(prompts, desc="continuations", disable=None)]
    with tqdm(total=len(settings) * len(cases), desc="alpha", disable=None) as bar:
        try:
            measurements = measure(model, cases, settings, args.draws, args.noise_seed, on_step=bar.update)
        except NoiseConfigError as err:  # model-dependent settings, e.g. --noise-layer deeper than the model
            parser.error(str(err))
    rows = [summarize(m, args.t_base) for m in measurements]
    positions = len(rows[0]["positions"]["alpha_mean"])
    print_table(rows, positions)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_args": model_args,
        "settings": {
            "noise": args.noise,
            "scales": args.scales,
            "draws": args.draws,
            "t_base": args.t_base,
            "positions": positions,
            "noise_seed": args.noise_seed,
        },
        "prompts": [
            {"prompt": c.prompt, "prompt_tokens": len(c.prompt_ids), "continuation": tokenizer.decode(c.continuation)}
            for c in cases
        ],
        "results": rows,
    }
    write_json(out / JSON_NAME, payload)
    write_csv(out / CSV_NAME, rows)
    write_plot(out / PLOT_NAME, rows)
    print(f"wrote {out / JSON_NAME}, {out / CSV_NAME}, {out / PLOT_NAME}")
    return 0
