"""Method labels, leaderboard records and table, and plots, on results in lm-eval's real format.

The fixtures under tests/fixtures/results/ were written by lm-eval 0.4.13's own CLI
(tests/fixtures/results/_make/generate.py) with a deterministic stand-in model; the slow test at
the end regenerates one run to check the readers still match what lm-eval writes today.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from lm_eval_noise.leaderboard import plots, table
from lm_eval_noise.results.samples import clean_ppl_metric
from lm_eval_noise.leaderboard.directions import HIGHER, LOWER, NEUTRAL, direction, results_direction
from lm_eval_noise.leaderboard.method import describe_method, method_label, method_slug
from lm_eval_noise.leaderboard.records import keep_newest, to_leaderboard_record, write_leaderboard_records
from lm_eval_noise.results.files import ResultsError, atomic_write_text, find_results_files, load_results
from lm_eval_noise.results.schema import resolve_metric, split_metric_list

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SWEEP = FIXTURES / "sweep"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def results_of(method_dir: str, task: str = "tiny_gen"):
    """The newest results file of `method_dir` in the sweep fixture that holds `task`."""
    files = [f for f in find_results_files(SWEEP / method_dir) if task in f.tasks]
    assert files, f"fixture {method_dir} has no {task} run"
    return max(files, key=lambda f: f.date)


def gen_results(gen_kwargs=None, noise=None, method=None, model_args="pretrained=m", output_type="generate_until"):
    """A minimal results JSON with lm-eval's key layout, for label edge cases."""
    config = {"model": "hf-noisy", "model_args": model_args, "gen_kwargs": None}
    if noise is not None:
        config["noise"] = noise
    if method is not None:
        config["method"] = method
    task_cfg = {"task": "t", "output_type": output_type}
    if gen_kwargs is not None:
        task_cfg["generation_kwargs"] = gen_kwargs
    return {"results": {"t": {"alias": "t", "acc,none": 0.5}}, "configs": {"t": task_cfg}, "config": config}


# ---- method labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method_dir", "task", "label"),
    [
        ("greedy", "tiny_gen", "greedy"),
        ("greedy", "tiny_mc", "greedy"),
        ("temp-0.8", "tiny_gen", "T=0.8"),
        ("temp-0.8", "tiny_mc", "T=0.8"),  # a loglikelihood task keeps its run's method (from --gen_kwargs)
        ("temp-1.5", "tiny_gen", "T=1.5"),  # no noise block at all, like stock `hf`
        ("nucleus-0.95", "tiny_gen", "top_p=0.95 T=1.0"),
        ("embed-0.002", "tiny_gen", "embedding σ=0.002"),
        ("embed-0.002", "tiny_mc", "embedding σ=0.002"),
        ("embed-0.01", "tiny_gen", "embedding σ=0.01"),
        ("embed-0.01-seq", "tiny_gen", "embedding σ=0.01 [per_sequence]"),
        ("wa-0.01", "tiny_gen", "weight+activation σ=0.01"),
        ("wa-0.03", "tiny_gen", "weight+activation σ=0.03"),  # written via --output_path X/wa.json
        ("embed-0.002-t0.8", "tiny_gen", "embed-0.002+temp-0.8"),  # config["method"] wins
    ],
)
def test_method_labels_of_real_result_files(method_dir, task, label):
    assert method_label(results_of(method_dir, task).data, task) == label


def test_method_structure_of_a_noise_run():
    m = describe_method(results_of("embed-0.01-seq").data, "tiny_gen")
    assert m.noise["type"] == "embedding" and m.noise["types"] == ["embedding"]
    assert m.noise["scale"] == 0.01 and m.noise["scope"] == "per_sequence" and m.noise["seed"] == 1234
    assert m.generation == {"do_sample": False}
    assert m.kind == "noise" and m.source == "derived"


def test_named_method_keeps_its_structure():
    m = describe_method(results_of("embed-0.002-t0.8").data, "tiny_gen")
    assert m.source == "config.method"
    assert m.noise["type"] == "embedding" and m.noise["scale"] == 0.002
    assert m.generation == {"do_sample": True, "temperature": 0.8}
    assert m.kind == "noise+sampling"


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"gen_kwargs": {"do_sample": False, "temperature": 0.0}}, "greedy"),
        ({"gen_kwargs": {"do_sample": False, "temperature": 0.7}}, "greedy"),
        ({"gen_kwargs": {"temperature": 0.7}}, "T=0.7"),
        ({"gen_kwargs": {"do_sample": True}}, "T=1.0"),
        ({"gen_kwargs": {"do_sample": "true", "temperature": "1.5"}}, "T=1.5"),
        ({"gen_kwargs": {"do_sample": True, "temperature": 1.0, "top_p": 0.95}}, "top_p=0.95 T=1.0"),
        ({"gen_kwargs": {"do_sample": True, "temperature": 1.0, "top_k": 50}}, "top_k=50 T=1.0"),
        ({"noise": {"noise": ["embedding"], "noise_scale": 0.002}}, "embedding σ=0.002"),
        ({"noise": {"noise": ["embedding"], "noise_scale": 0.002}, "gen_kwargs": {"do_sample": True, "temperature": 0.8}},
         "embedding σ=0.002 + T=0.8"),
        ({"noise": {"noise": "weight+activation", "noise_scale": 0.01}}, "weight+activation σ=0.01"),
        ({"noise": {"noise": ["weight", "activation"], "noise_scale": 0.01}}, "weight+activation σ=0.01"),
        ({"noise": {"noise": [], "noise_scale": 0.0}}, "greedy"),
        ({"noise": {"noise": "none", "noise_scale": 0.0}}, "greedy"),
        ({"noise": {"noise": ["hidden"], "noise_scale": 0.05, "noise_layer": 5, "noise_first_k": 4}},
         "hidden σ=0.05 [layer=5, first_k=4]"),
        ({"noise": {"noise": ["embedding"], "noise_scale": 0.01, "noise_scope": "per_token", "embed_norm": "vocab",
                    "noise_seed": 9}}, "embedding σ=0.01"),
        ({"model_args": "pretrained=m,noise=embedding,noise_scale=0.005"}, "embedding σ=0.005"),
        ({"model_args": {"pretrained": "m", "noise": "embedding", "noise_scale": 0.005}}, "embedding σ=0.005"),
        ({"method": "my-method"}, "my-method"),
        ({"output_type": "multiple_choice"}, "greedy"),
    ],
)
def test_method_label_rules(kwargs, label):
    assert method_label(gen_results(**kwargs), "t") == label


@pytest.mark.parametrize(
    ("args", "label"),
    [
        ({"noise": "embedding", "noise_scale": 0.002}, "embedding σ=0.002"),
        ({"noise": "weight+activation", "noise_scale": 0.01}, "weight+activation σ=0.01"),
        ({"noise": "embedding", "noise_scale": 0.01, "noise_scope": "per_sequence"}, "embedding σ=0.01 [per_sequence]"),
        ({"noise": "none"}, "greedy"),
        ({"noise": "hidden", "noise_layer": 0, "noise_scale": 0.05}, "hidden σ=0.05 [layer=0]"),
        ({"noise": "embedding", "noise_first_k": 4, "noise_scale": 0.01}, "embedding σ=0.01 [first_k=4]"),
        ({"noise": "weight", "noise_targets": "attention", "noise_scale": 0.01}, "weight σ=0.01 [targets=attention]"),
        ({"noise": "embedding", "noise_scale": 0.01, "noise_schedule": "cosine", "noise_scale_end": 0.001},
         "embedding σ=0.01 [schedule=cosine, scale_end=0.001]"),
        ({"noise": "embedding", "noise_scale": 0.002, "embed_norm": "input"}, "embedding σ=0.002 [embed_norm=input]"),
    ],
)
def test_labels_of_hf_noisy_provenance(args, label):
    """The block hf-noisy really writes (lm_eval_noise.provenance) gives the expected labels."""
    from lm_eval_noise.noise.config import NoiseConfig
    from lm_eval_noise.provenance import provenance

    block = json.loads(json.dumps(provenance(NoiseConfig.from_args(**args), 0.87, True)))  # as read from a file
    assert method_label(gen_results(noise=block, gen_kwargs={"do_sample": False}), "t") == label
    (rec,) = to_leaderboard_record(gen_results(noise=block))
    assert rec["seed"]["run"] == 0 and rec["versions"]["torch"] == block["versions"]["torch"]


def test_method_slug_is_file_name_safe():
    assert method_slug("embedding σ=0.002 + T=0.8") == "embedding_sigma=0.002+T=0.8"
    assert method_slug("embedding σ=0.01 [per_sequence]") == "embedding_sigma=0.01__per_sequence"
    assert "/" not in method_slug("a/b") and method_slug("") == "method"


# ---- metric directions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("self_bleu", LOWER),
        ("self_bleu,all_samples", LOWER),
        ("self_bleu_multi_ref", LOWER),
        ("docstring_self_bleu,all_samples", LOWER),  # problem_generation's prefixed metric
        ("perplexity", LOWER),
        ("word_perplexity,none", LOWER),
        ("clean_ppl", LOWER),
        ("bits_per_byte", LOWER),
        ("bleu", HIGHER),
        ("acc", HIGHER),
        ("pass@5", HIGHER),
        ("distinct_2", HIGHER),
        ("edit_distance", HIGHER),
        ("mean_length", NEUTRAL),
    ],
)
def test_metric_directions(metric, expected):
    assert direction(metric) == expected


def test_the_tasks_declaration_decides_and_the_table_fills_in():
    assert direction("my_error_rate", declared=False) == LOWER
    assert direction("my_score", declared=True) == HIGHER
    assert direction("mean_length", declared=True) == HIGHER  # declared: trusted
    assert direction("mean_length", declared=None) == NEUTRAL  # declared null (no better side): the table
    assert direction("clean_ppl", declared=None) == LOWER  # the leaderboard's own metric: nobody declares it
    data = {"higher_is_better": {"t": {"my_rate": False, "mean_length": None}}}
    assert results_direction(data, "t", "my_rate,none") == LOWER
    assert results_direction(data, "t", "mean_length,none") == NEUTRAL
    assert results_direction(data, "other", "my_rate,none") == HIGHER


# ---- results files and records ----------------------------------------------------------------


def test_find_results_files_sees_every_lm_eval_layout():
    files = find_results_files(SWEEP)
    names = {f.path.name.split("_")[0] for f in files}
    assert names == {"results", "wa"}  # DIR/<model>/results_<date>.json and X/<stem>_<date>.json
    assert all(f.data["lm_eval_version"] == "0.4.13" for f in files)
    for f in files:
        for task in f.tasks:
            assert f.samples_path(task) is not None, (f.path, task)


def test_load_results_rejects_other_json(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ResultsError, match="not an lm-eval results JSON"):
        load_results(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_results(tmp_path / "y.json")


def test_leaderboard_record_carries_everything_from_the_results_json():
    rf = results_of("embed-0.01-seq")
    (rec,) = to_leaderboard_record(rf)
    raw = rf.data
    assert rec["model"]["name"] == "tiny-fixture-model"
    assert rec["method"]["label"] == "embedding σ=0.01 [per_sequence]"
    assert rec["method"]["noise"]["scale"] == 0.01
    assert rec["task"]["name"] == "tiny_gen" and rec["task"]["version"] == raw["versions"]["tiny_gen"]
    assert rec["task"]["repeats"] == 5 and rec["task"]["output_type"] == "generate_until"
    for metric in ("pass@1", "pass@5", "distinct_2", "self_bleu"):
        entry = rec["metrics"][f"{metric},all_samples"]
        assert entry["value"] == raw["results"]["tiny_gen"][f"{metric},all_samples"]
        assert entry["stderr"] == raw["results"]["tiny_gen"][f"{metric}_stderr,all_samples"]
        assert entry["filter"] == "all_samples"
    assert rec["metrics"]["self_bleu,all_samples"]["direction"] == LOWER
    assert rec["n_samples"] == {"original": 16, "effective": 16}
    assert rec["seed"]["random"] == 0 and rec["seed"]["noise"] == 1234
    assert rec["versions"]["lm_eval"] == "0.4.13" and rec["versions"]["torch"]
    assert rec["date"] == raw["date"] and rec["date_iso"].startswith("20")
    assert rec["source"]["results_file"] == str(rf.path)
    json.dumps(rec)  # serialisable as is


def test_one_record_per_task_of_a_multi_task_run():
    rf = next(f for f in find_results_files(SWEEP / "temp-1.5") if len(f.tasks) == 2)
    recs = to_leaderboard_record(rf.path)
    assert [r["task"]["name"] for r in recs] == ["tiny_gen", "tiny_mc"]
    assert {r["method"]["label"] for r in recs} == {"T=1.5"}


def test_records_accept_a_bare_dict():
    data = results_of("greedy").data
    (rec,) = to_leaderboard_record(data)
    assert rec["date"] == data["date"] and rec["source"]["results_file"] is None


def test_model_name_falls_back_to_model_args():
    (rec,) = to_leaderboard_record(gen_results(model_args="pretrained=org/m,noise=embedding,noise_scale=0.1"))
    assert rec["model"]["name"] == "org/m" and rec["model"]["name_sanitized"] == "org__m"
    assert rec["method"]["label"] == "embedding σ=0.1"


def test_keep_newest_drops_the_older_duplicate():
    records = [r for f in find_results_files(SWEEP / "greedy") for r in to_leaderboard_record(f)]
    kept, superseded = keep_newest(records)
    gen = [r for r in kept if r["task"]["name"] == "tiny_gen"]
    assert len(gen) == 1 and gen[0]["n_samples"]["effective"] == 16  # the older run had --limit 10
    assert len(superseded) == 1 and superseded[0]["task"] == "tiny_gen"
    assert superseded[0]["kept_date"] > superseded[0]["dropped_date"]


def copy_run(src, dst: Path, **changes) -> dict:
    """Copy a fixture results JSON to `dst`, with config["noise"] entries and the date changed."""
    data = json.loads(src.path.read_text())
    data["date"] += changes.pop("date_shift", 0)
    value = changes.pop("pass5", None)
    if value is not None:
        data["results"]["tiny_gen"]["pass@5,all_samples"] = value
    data["config"]["noise"].update(changes)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / src.path.name).write_text(json.dumps(data))
    return data


def test_seeds_of_a_method_are_averaged_or_shown_per_seed(tmp_path, capsys):
    src = results_of("embed-0.002")
    copy_run(src, tmp_path / "embed" / "seed-1", noise_seed=1, pass5=0.5)
    copy_run(src, tmp_path / "embed" / "seed-2", noise_seed=2, pass5=0.7, date_shift=10)
    copy_run(results_of("greedy"), tmp_path / "greedy", noise_seed=1)
    records, superseded = table.collect(tmp_path)
    assert superseded == [] and len(records) == 3
    t = table.build_table(records)
    assert [(r.label, r.seeds) for r in t.rows] == [("greedy", 1), ("embedding σ=0.002", 2)]
    j = next(j for j, c in enumerate(t.columns) if c.name == "pass@5")
    cell = t.cells[(1, j)]
    assert cell["value"] == pytest.approx(0.6) and cell["sd"] == pytest.approx(math.sqrt(0.02))  # sd of 0.5, 0.7
    assert cell["stderr"] is None and cell["seeds"] == 2 and sorted(cell["seed_list"]) == [1, 2]
    assert t.cells[(0, j)]["stderr"] is not None and t.cells[(0, j)]["sd"] is None  # one seed: lm-eval's stderr
    assert table.main([str(tmp_path), "--style", "markdown", "--metrics", "pass@5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| model | method | seeds | tiny_gen/pass@5 ↑ |"
    assert f"| tiny-fixture-model | embedding σ=0.002 | 2 | 0.600 ± {math.sqrt(0.02):.3f} |" in out

    per_seed = table.build_table(records, per_seed=True)
    assert [r.label for r in per_seed.rows] == ["greedy", "embedding σ=0.002 seed=1", "embedding σ=0.002 seed=2"]
    assert table.main([str(tmp_path), "--style", "markdown", "--metrics", "pass@5", "--per-seed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| model | method | tiny_gen/pass@5 ↑ |"
    assert any(line.startswith("| tiny-fixture-model | embedding σ=0.002 seed=2 | **0.700 ± ") for line in out)

    sel, (key,) = plots.select(records, ["pass@5"], None, None)
    _, series = plots.plot_sigma(sel, key, tmp_path / "s.png")
    assert series["embedding"] == [(0.002, pytest.approx(0.6))]  # the mean over seeds
    # the same seed twice is a repeat: the newest wins
    copy_run(src, tmp_path / "embed" / "again", noise_seed=2, pass5=0.9, date_shift=20)
    records, superseded = table.collect(tmp_path)
    assert len(records) == 3 and len(superseded) == 1 and superseded[0]["seed"] == 2
    assert max(r["metrics"]["pass@5,all_samples"]["value"] for r in records) == 0.9


def test_model_column_shows_a_short_name(tmp_path, capsys):
    data = json.loads(results_of("greedy").path.read_text())
    for folder, name in (("a", "/root/.cache/lm_eval_noise/tiny-llama-1234"), ("b", "org/model-b")):
        data["model_name"] = name
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results_2026-01-01T00-00-00.json").write_text(json.dumps(data))
    assert table.main([str(tmp_path), "--style", "markdown", "--metrics", "pass@1"]) == 0
    out = capsys.readouterr().out
    assert "| tiny-llama-1234 | greedy |" in out and "| org/model-b | greedy |" in out and "/root/.cache" not in out
    # two local models with the same folder name keep their full paths, to stay apart
    data["model_name"] = "/other/place/tiny-llama-1234"
    (tmp_path / "b" / "results_2026-01-01T00-00-00.json").write_text(json.dumps(data))
    assert table.main([str(tmp_path), "--style", "markdown", "--metrics", "pass@1"]) == 0
    out = capsys.readouterr().out
    assert "| /root/.cache/lm_eval_noise/tiny-llama-1234 | greedy |" in out and "| /other/place/tiny-llama-1234 |" in out


def test_measured_counts_show_beside_their_metric(tmp_path, capsys):
    data = json.loads(results_of("greedy").path.read_text())
    res = data["results"]["tiny_gen"]
    res["self_bleu_measured,all_samples"], res["self_bleu_measured_stderr,all_samples"] = 12, "N/A"
    res["distinct_2_measured,all_samples"], res["distinct_2_measured_stderr,all_samples"] = 16, "N/A"
    data["higher_is_better"]["tiny_gen"].update(self_bleu_measured=True, distinct_2_measured=True)
    (tmp_path / "results_2026-01-01T00-00-00.json").write_text(json.dumps(data))
    records, _ = table.collect(tmp_path)
    t = table.build_table(records)
    assert [c.name for c in t.columns if c.task == "tiny_gen"] == ["pass@1", "pass@5", "distinct_2", "self_bleu"]
    out_json = tmp_path / "lb.json"
    assert table.main([str(tmp_path), "--style", "markdown", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "_measured" not in out.splitlines()[0]
    value = res["self_bleu,all_samples"]
    assert f"{value:.3f} ± {res['self_bleu_stderr,all_samples']:.3f} (n=12/16)" in out  # 12 of 16 prompts
    assert "(n=16/16)" not in out  # measured everywhere: nothing to say
    (row,) = json.loads(out_json.read_text())["rows"]
    assert row["cells"]["tiny_gen/self_bleu"]["measured"] == 12


def test_write_leaderboard_records(tmp_path):
    records, _ = table.collect(SWEEP)
    paths = write_leaderboard_records(records, tmp_path)
    assert len(paths) == len(records)
    target = tmp_path / "tiny-fixture-model" / "embedding_sigma=0.002+T=0.8" / "tiny_gen.json"
    assert not target.exists()  # the named method keeps its own label
    target = tmp_path / "tiny-fixture-model" / "embedding_sigma=0.01__per_sequence" / "tiny_gen.json"
    assert json.loads(target.read_text())["method"]["label"] == "embedding σ=0.01 [per_sequence]"
    assert (tmp_path / "org__tiny-fixture-model-b" / "T=0.8" / "tiny_gen.json").is_file()
    assert not list(tmp_path.rglob("*.tmp"))
    # records are not mistaken for lm-eval results by the readers
    assert find_results_files(tmp_path) == []


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text("old")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_resolve_metric_with_and_without_filter():
    keys = ["pass@5,all_samples", "acc,none", "em,strict", "em,flexible"]
    assert resolve_metric("pass@5", keys) == "pass@5,all_samples"
    assert resolve_metric("pass@5,all_samples", keys) == "pass@5,all_samples"
    assert resolve_metric("em,strict", keys) == "em,strict"
    with pytest.raises(ResultsError, match="ambiguous.*em,flexible"):
        resolve_metric("em", keys)
    with pytest.raises(ResultsError, match="not found.*available: acc,none"):
        resolve_metric("distinct_2", keys)


def test_metric_lists_keep_filter_pairs_together():
    keys = ["pass@5,all_samples", "self_bleu,all_samples", "acc,none"]
    assert split_metric_list("pass@5,self_bleu", keys) == ["pass@5", "self_bleu"]
    assert split_metric_list("pass@5,all_samples,acc", keys) == ["pass@5,all_samples", "acc"]
    assert split_metric_list(" acc , none ", keys) == ["acc,none"]


# ---- the table --------------------------------------------------------------------------------


def test_table_rows_columns_and_best_marks():
    records, superseded = table.collect(SWEEP)
    t = table.build_table(records, superseded=superseded)
    assert len({(r.model, r.label) for r in t.rows}) == len(t.rows) == 13
    assert [c.id for c in t.columns] == [
        "tiny_gen/pass@1", "tiny_gen/pass@5", "tiny_gen/distinct_2", "tiny_gen/self_bleu", "tiny_mc/acc", "tiny_mc/acc_norm",
    ]
    # independent check of the best per column, from the records themselves
    for j, col in enumerate(t.columns):
        values = {(r["model"]["name"], r["method"]["label"]): r["metrics"][col.key]["value"]
                  for r in records if r["task"]["name"] == col.task}
        pick = min if col.name == "self_bleu" else max
        best = pick(values.values())
        expected = {k for k, v in values.items() if v == best}
        assert {(t.rows[i].model, t.rows[i].label) for i in t.best_rows(j)} == expected, col.id
    j = next(j for j, c in enumerate(t.columns) if c.name == "self_bleu")
    assert t.columns[j].direction == LOWER
    (best,) = t.best_rows(j)
    assert t.cells[(best, j)]["value"] < 0.1  # lowest Self-BLEU wins, not the greedy 1.0


def test_table_metric_selection():
    records, _ = table.collect(SWEEP)
    t = table.build_table(records, ["self_bleu", "pass@5,all_samples", "tiny_mc/acc"])
    assert [c.id for c in t.columns] == ["tiny_gen/self_bleu", "tiny_gen/pass@5", "tiny_mc/acc"]
    with pytest.raises(ResultsError, match="matches no metric; available: tiny_gen: pass@1"):
        table.build_table(records, ["bleu"])


def test_leaderboard_cli_writes_markdown_csv_and_json(tmp_path, capsys):
    out_csv, out_json, rec_dir = tmp_path / "lb.csv", tmp_path / "lb.json", tmp_path / "records"
    rc = table.main([str(SWEEP), "--csv", str(out_csv), "--json", str(out_json), "--records", str(rec_dir), "--style", "markdown"])
    assert rc == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("| model | method | seeds | tiny_gen/pass@1 ↑")
    assert "tiny_gen/self_bleu ↓" in lines[0]
    greedy = next(line for line in lines if "| tiny-fixture-model | greedy | 1 |" in line)
    assert "**1.000 ± 0.000**" in greedy  # tiny_mc acc: greedy is (jointly) best
    assert "1.000 ± 0.000 |" in greedy  # its Self-BLEU of 1.0 is the worst, not bold
    assert "kept the newest run" in captured.err and "ignored" in captured.err

    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 13
    row = next(r for r in rows if r["model"] == "tiny-fixture-model" and r["method"] == "embedding σ=0.002")
    rec = to_leaderboard_record(results_of("embed-0.002"))[0]
    assert float(row["tiny_gen/pass@5"]) == rec["metrics"]["pass@5,all_samples"]["value"]
    assert float(row["tiny_gen/pass@5 stderr"]) == rec["metrics"]["pass@5,all_samples"]["stderr"]
    assert row["tiny_mc/acc"] != ""
    nucleus = next(r for r in rows if r["method"] == "top_p=0.95 T=1.0")
    assert nucleus["tiny_mc/acc"] == ""  # no run: empty cell

    report = json.loads(out_json.read_text())
    col = next(c for c in report["columns"] if c["id"] == "tiny_gen/self_bleu")
    assert col["direction"] == "lower" and col["key"] == "self_bleu,all_samples" and len(col["best"]) >= 1
    assert len(report["superseded"]) == 1
    assert len(list(rec_dir.rglob("*.json"))) == 17


def test_leaderboard_cli_metrics_option(capsys):
    assert table.main([str(SWEEP), "--metrics", "pass@5,all_samples,acc", "--style", "markdown"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "| model | method | seeds | tiny_gen/pass@5 ↑ | tiny_mc/acc ↑ |"


def test_leaderboard_cli_errors_are_clear(tmp_path, capsys):
    assert table.main([str(tmp_path)]) == 2
    assert "no lm-eval results JSON found" in capsys.readouterr().err
    assert table.main([str(SWEEP), "--metrics", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' matches no metric" in err and "distinct_2" in err


def test_leaderboard_rich_style(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert table.main([str(SWEEP / "greedy"), "--style", "rich"]) == 0
    out = capsys.readouterr().out
    assert "greedy" in out and "tiny_gen/pass@1" in out


def truncated_sweep(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the sweep fixture with one results JSON cut off mid-write."""
    root = tmp_path / "sweep"
    shutil.copytree(SWEEP, root)
    broken = next(f.path for f in find_results_files(root / "embed-0.05"))
    broken.write_text(broken.read_text()[:300])
    return root, broken


def test_leaderboard_names_unreadable_files_and_strict_fails(tmp_path, capsys):
    root, broken = truncated_sweep(tmp_path)
    (root / "empty_2026-01-01T00-00-00.json").write_text("")  # named like a results file, nothing in it
    (root / "lb.json").write_text('{"columns": []}')  # other JSON: not a results file, not a warning
    assert table.main([str(root), "--style", "markdown"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 2
    assert any(str(broken) in w and "not valid JSON" in w and "it held tiny_gen" in w for w in warnings)
    assert any("empty_2026-01-01T00-00-00.json" in w for w in warnings)
    assert "embedding σ=0.05" not in captured.out  # the unreadable run is not in the table
    assert table.main([str(root), "--style", "markdown", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "error: --strict: 2 results files under" in err and str(broken) in err


def test_plot_names_unreadable_files_and_strict_fails(tmp_path, capsys):
    root, broken = truncated_sweep(tmp_path)
    args = [str(root), "--x", "distinct_2", "--y", "pass@5", "--model", "tiny-fixture-model", "-o", str(tmp_path / "p.png")]
    assert plots.main(args) == 0
    assert f"warning: skipped {broken}" in capsys.readouterr().err
    assert plots.main([*args, "--strict"]) == 2
    assert f"--strict: 1 results file under {root} could not be read: {broken}" in capsys.readouterr().err


# ---- plots ------------------------------------------------------------------------------------


def assert_valid_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 400 and img.shape[1] >= 600
    assert img.std() > 0.01  # not a blank canvas


def test_pareto_front_respects_directions():
    xs, ys = [0.1, 0.5, 0.9, 0.5, 0.2], [0.9, 0.8, 0.3, 0.5, 0.2]
    assert plots.pareto_front(xs, ys) == [0, 1, 2]
    # x lower-is-better (e.g. Self-BLEU): small x wins
    assert plots.pareto_front(xs, ys, x_dir=LOWER) == [0]
    assert plots.pareto_front([1, 1], [2, 2]) == [0, 1]  # identical points both stay


def test_pareto_plot(tmp_path, capsys):
    out = tmp_path / "plots" / "pareto.png"
    rc = plots.main([str(SWEEP), "--x", "distinct_2", "--y", "pass@5", "--output", str(out), "--model", "tiny-fixture-model"])
    assert rc == 0, capsys.readouterr().err
    assert_valid_png(out)
    msg = capsys.readouterr().out
    front = msg.split("Pareto frontier: ")[1].strip().split(", ")
    records, _ = table.collect(SWEEP)
    pts = {r["method"]["label"]: (r["metrics"]["distinct_2,all_samples"]["value"], r["metrics"]["pass@5,all_samples"]["value"])
           for r in records if r["model"]["name"] == "tiny-fixture-model" and r["task"]["name"] == "tiny_gen"}
    expected = {k for k, (x, y) in pts.items()
                if not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in pts.values())}
    assert set(front) == expected and "greedy" not in front
    assert not list(out.parent.glob(".*"))  # no temp file left


def test_pareto_plot_with_a_lower_is_better_axis(tmp_path):
    out = tmp_path / "p.png"
    assert plots.main([str(SWEEP), "--x", "self_bleu,all_samples", "--y", "pass@1", "-o", str(out), "--model", "tiny-fixture-model"]) == 0
    assert_valid_png(out)


def test_sigma_plot(tmp_path, capsys):
    out = tmp_path / "sigma.png"
    rc = plots.main([str(SWEEP), "--kind", "sigma", "--y", "pass@5", "--output", str(out), "--model", "tiny-fixture-model"])
    assert rc == 0, capsys.readouterr().err
    assert_valid_png(out)
    msg = capsys.readouterr().out
    assert "series: embedding, embedding + T=0.8, embedding [per_sequence], weight+activation\n" in msg


def test_sigma_series_and_baselines():
    records, _ = table.collect(SWEEP)
    sel, (key,) = plots.select(records, ["pass@5"], None, "tiny-fixture-model")
    assert sel.task == "tiny_gen"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, series = plots.plot_sigma(sel, key, Path(tmp) / "s.png")
    assert [s for s, _ in sorted(series["embedding"])] == [0.002, 0.01, 0.05]
    assert "embedding + T=0.8" in series  # noise with sampling is its own line


def test_plot_without_y_uses_the_tasks_primary_metric(tmp_path, capsys):
    out = tmp_path / "sigma.png"
    assert plots.main([str(SWEEP), "--kind", "sigma", "--model", "tiny-fixture-model", "--task", "tiny_gen", "-o", str(out)]) == 0
    assert "y = pass@1,all_samples" in capsys.readouterr().out  # tiny_gen's metric_list starts with pass@1
    assert_valid_png(out)
    assert plots.main([str(SWEEP), "--x", "distinct_2", "--model", "tiny-fixture-model", "-o", str(tmp_path / "p.png")]) == 0
    assert "(tiny-fixture-model, tiny_gen, y = pass@1,all_samples)" in capsys.readouterr().out
    records, _ = table.collect(SWEEP)
    assert {r["task"]["name"]: r["task"]["primary_metric"] for r in records} == {
        "tiny_gen": "pass@1,all_samples", "tiny_mc": "acc,none"}
    # the rule is stated in --help
    with pytest.raises(SystemExit):
        plots.main(["--help"])
    assert "primary metric, the first metric its YAML declares" in " ".join(capsys.readouterr().out.split())


def test_plots_average_seeds_and_show_measured_counts(tmp_path, capsys):
    src = results_of("embed-0.002")
    for seed, value in ((1, 0.9), (2, 1.0)):
        data = copy_run(src, tmp_path / "embed" / f"seed-{seed}", noise_seed=seed, pass5=value)
        res = data["results"]["tiny_gen"]
        res["distinct_2_measured,all_samples"] = 10 + seed  # 11 and 12 of 16 prompts
        (tmp_path / "embed" / f"seed-{seed}" / src.path.name).write_text(json.dumps(data))
    copy_run(results_of("greedy"), tmp_path / "greedy", noise_seed=1)
    out = tmp_path / "p.png"
    assert plots.main([str(tmp_path), "--x", "distinct_2", "--y", "pass@5", "-o", str(out)]) == 0
    msg = capsys.readouterr().out
    assert "embedding σ=0.002 (2 seeds) (n=23/32)" in msg.split("Pareto frontier: ")[1]  # one point, not one per seed
    assert_valid_png(out)
    records, _ = table.collect(tmp_path)
    noisy = [r for r in records if r["method"]["noise"] and r["task"]["name"] == "tiny_gen"]
    assert plots.counts_note(noisy, ["distinct_2,all_samples"]) == " (n=23/32)"
    assert plots.counts_note(noisy, ["pass@5,all_samples"]) == ""  # no count reported: nothing to say
    assert plots.main([str(tmp_path), "--kind", "sigma", "--y", "distinct_2", "-o", str(tmp_path / "s.png")]) == 0


def test_plot_errors_are_clear(tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert plots.main([str(SWEEP), "--x", "distinct_2", "--y", "pass@7", "-o", out, "--model", "tiny-fixture-model"]) == 2
    err = capsys.readouterr().err
    assert "pass@7" in err and "available metrics per task" in err and "pass@5" in err
    assert plots.main([str(SWEEP), "--x", "distinct_2", "--y", "pass@5", "-o", out]) == 2
    assert "several models; pick one with --model: org/tiny-fixture-model-b, tiny-fixture-model" in capsys.readouterr().err
    assert plots.main([str(SWEEP), "--x", "distinct_2", "--y", "pass@5", "-o", out, "--model", "tiny-fixture-model",
                       "--task", "tiny_mc"]) == 2
    assert "not found in task 'tiny_mc'; available: acc,none, acc_norm,none" in capsys.readouterr().err
    assert plots.main([str(SWEEP), "--y", "pass@5", "-o", out, "--model", "tiny-fixture-model"]) == 2
    assert "needs --x" in capsys.readouterr().err
    assert not Path(out).exists()


# ---- clean perplexity from logged samples ------------------------------------------------------


def write_samples(path: Path, docs: list[tuple[int, str, list]]) -> Path:
    """A samples JSONL in lm-eval's layout: (doc_id, filter, clean_ppl per repeat) per line."""
    lines = [
        {"doc_id": doc_id, "filter": filt,
         "arguments": {"gen_args_0": {"arg_0": "ctx", "arg_1": {"noise_samples": [{"repeat": i, "clean_ppl": v} for i, v in enumerate(ppls)]}}}}
        for doc_id, filt, ppls in docs
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_clean_ppl_metric_skips_nulls_and_counts_each_doc_once(tmp_path):
    path = write_samples(tmp_path / "samples_t_2026-01-01T00-00-00.jsonl", [
        (0, "a", [2.0, 4.0]), (0, "b", [2.0, 4.0]), (1, "a", [6.0, None]), (1, "b", [6.0, None]),
    ])
    value, stderr = clean_ppl_metric(path)
    assert value == pytest.approx(4.0)  # (2 + 4 + 6) / 3
    assert stderr == pytest.approx(math.sqrt(((3 - 4.5) ** 2 + (6 - 4.5) ** 2) / 1) / math.sqrt(2))
    assert clean_ppl_metric(write_samples(tmp_path / "one.jsonl", [(0, "a", [3.0, 5.0])])) == (4.0, None)
    assert clean_ppl_metric(write_samples(tmp_path / "empty.jsonl", [(0, "a", [None]), (1, "a", [None])])) is None


def test_runs_without_clean_ppl_get_no_such_column():
    records, _ = table.collect(SWEEP)
    assert all("clean_ppl,none" not in r["metrics"] for r in records)


def test_a_results_file_without_samples_borrows_none_from_another_run(tmp_path):
    rf = results_of("embed-0.002")
    shutil.copy(rf.samples_path("tiny_gen"), tmp_path)
    shutil.copy(rf.path, tmp_path)
    data = json.loads(rf.path.read_text())
    (tmp_path / "results_2030-01-01T00-00-00.000000.json").write_text(json.dumps(data))  # run without --log_samples
    other = load_results(tmp_path / "results_2030-01-01T00-00-00.000000.json")
    assert other.samples_path("tiny_gen") is None
    assert load_results(tmp_path / rf.path.name).samples_path("tiny_gen") is not None


def hand_mean(samples_path: Path) -> float:
    """Mean clean_ppl over a samples file, read the plain way: one entry per doc, nulls dropped."""
    by_doc = {}
    for line in samples_path.read_text().splitlines():
        sample = json.loads(line)
        records = sample["arguments"]["gen_args_0"]["arg_1"]["noise_samples"]
        by_doc.setdefault(sample["doc_id"], [r["clean_ppl"] for r in records])
    values = [v for vs in by_doc.values() for v in vs if v is not None]
    assert values
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def clean_ppl_run(tiny_model, tmp_path_factory) -> Path:
    """A real tiny hf-noisy run with clean_ppl=true, written by lm-eval's EvaluationTracker."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    import lm_eval_noise

    model_args = f"pretrained={tiny_model},device=cpu,dtype=float32,noise=embedding,noise_scale=0.05,clean_ppl=true"
    tracker = EvaluationTracker(output_path=str(tmp_path_factory.mktemp("clean_ppl_run")))
    results = lm_eval.simple_evaluate(
        model="hf-noisy", model_args=model_args, tasks=["noise_demo"],
        task_manager=TaskManager(include_path=str(lm_eval_noise.tasks_dir()), include_defaults=False),
        limit=2, gen_kwargs="max_gen_toks=8", log_samples=True,
    )
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf-noisy", model_args=model_args, system_instruction=None, chat_template=None,
        fewshot_as_multiturn=False,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    tracker.save_results_samples(task_name="noise_demo", samples=samples["noise_demo"])
    return Path(tracker.output_path)


def test_leaderboard_shows_mean_clean_ppl_of_a_real_run(clean_ppl_run, tmp_path, capsys):
    (rf,) = find_results_files(clean_ppl_run)
    expected = hand_mean(rf.samples_path("noise_demo"))
    (rec,) = to_leaderboard_record(rf)
    entry = rec["metrics"]["clean_ppl,none"]
    assert entry["value"] == pytest.approx(expected) and entry["value"] >= 1.0
    assert entry["stderr"] is not None and entry["direction"] == LOWER
    assert {"unique,all_samples", "distinct_2,all_samples"} <= set(rec["metrics"])  # beside the task's own
    out_json = tmp_path / "t.json"
    assert table.main([str(clean_ppl_run), "--style", "markdown", "--json", str(out_json)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "noise_demo/clean_ppl ↓" in header and "noise_demo/distinct_2 ↑" in header
    (row,) = json.loads(out_json.read_text())["rows"]
    assert row["cells"]["noise_demo/clean_ppl"]["value"] == pytest.approx(expected)


def test_sweep_with_clean_ppl_in_model_args(tiny_model, tmp_path, monkeypatch):
    from lm_eval_noise.sweep import parse_config, run_sweep

    monkeypatch.setenv("TINY_MODEL", tiny_model)
    config = {
        "model": "hf-noisy",
        "model_args": {"pretrained": "${TINY_MODEL}", "device": "cpu", "dtype": "float32", "clean_ppl": True},
        "tasks": ["noise_demo"], "include_defaults": False, "limit": 2, "batch_size": 2,
        "gen_kwargs": {"max_gen_toks": 6},
        "methods": [{"name": "embed-0.05", "noise": {"noise": "embedding", "noise_scale": 0.05}}],
    }
    run_sweep(parse_config(config, "clean_ppl_sweep", tmp_path), out=io.StringIO())
    (rf,) = find_results_files(tmp_path)
    (rec,) = to_leaderboard_record(rf)
    assert rec["method"]["label"] == "embed-0.05"
    assert rec["metrics"]["clean_ppl,none"]["value"] == pytest.approx(hand_mean(rf.samples_path("noise_demo")))


# ---- against lm-eval as installed -------------------------------------------------------------


@pytest.mark.slow
def test_readers_match_a_fresh_lm_eval_run(tmp_path):
    spec = importlib.util.spec_from_file_location("fixture_generate", FIXTURES / "_make" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    work = tmp_path / "work"
    work.mkdir()
    gen.prepare_workdir(work)
    out = tmp_path / "sweep" / "embed"
    gen.run_lm_eval(work, out, "pretrained=fresh-model,noise=embedding,noise_scale=0.02",
                    "do_sample=True,temperature=0.8", ["tiny_gen"], 4)
    (rf,) = find_results_files(tmp_path / "sweep")
    assert rf.path.parent == out / "fresh-model" and rf.samples_path("tiny_gen") is not None
    (rec,) = to_leaderboard_record(rf)
    assert rec["method"]["label"] == "embedding σ=0.02 + T=0.8"
    assert rec["n_samples"]["effective"] == 4
    assert set(rec["metrics"]) == {"pass@1,all_samples", "pass@5,all_samples", "distinct_2,all_samples", "self_bleu,all_samples"}
    assert all(math.isfinite(m["value"]) and m["stderr"] is not None for m in rec["metrics"].values())


def test_seed_conditioning_methods_in_table_and_sigma_plot(tmp_path, monkeypatch):
    """Dummy-token runs are a σ series; a random prefix has no σ and is drawn as a baseline."""
    from matplotlib.axes import Axes

    lines: list[str] = []
    draw = Axes.axhline
    monkeypatch.setattr(Axes, "axhline", lambda self, *a, **kw: (lines.append(kw.get("label")), draw(self, *a, **kw))[1])
    src = results_of("embed-0.002")
    copy_run(src, tmp_path / "embed")
    for sigma in (0.5, 1.0):
        copy_run(src, tmp_path / f"dummy-{sigma}", noise=["dummy"], noise_scale=sigma, noise_dummy_tokens=4,
                 noise_dummy_position="prefix", noise_dummy_init="gaussian")
    copy_run(src, tmp_path / "prefix", noise=[], noise_scale=0.0, random_prefix=8,
             random_prefix_alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    records, _ = table.collect(tmp_path)
    labels = {r["method"]["label"] for r in records if r["task"]["name"] == "tiny_gen"}
    assert labels == {"embedding σ=0.002", "dummy σ=0.5 k=4 prefix", "dummy σ=1.0 k=4 prefix", "random prefix k=8"}
    sel, (key,) = plots.select(records, ["pass@5"], None, None)
    _, series = plots.plot_sigma(sel, key, tmp_path / "s.png")
    assert sorted(series) == ["dummy k=4 prefix", "embedding"]
    assert [s for s, _ in series["dummy k=4 prefix"]] == [0.5, 1.0]
    assert lines == ["random prefix k=8 (baseline)"]


def test_sample_record_round_trip_and_version():
    from lm_eval_noise.results.samples import SampleRecord, attach, doc_records

    kwargs: dict = {}
    attach(kwargs, SampleRecord(repeat=0, seed="00000000000000ff", clean_ppl=2.5))
    attach(kwargs, SampleRecord(repeat=1, seed="0000000000000100", clean_ppl=math.nan))  # an empty sample
    assert kwargs["noise_samples"][0] == {"v": 1, "repeat": 0, "seed": "00000000000000ff", "clean_ppl": 2.5}
    assert kwargs["noise_samples"][1]["clean_ppl"] is None  # JSON null, not NaN
    logged = json.loads(json.dumps({"arguments": {"gen_args_0": {"arg_0": "ctx", "arg_1": kwargs}}}))
    first, second = doc_records(logged)
    assert first == SampleRecord(repeat=0, seed="00000000000000ff", clean_ppl=2.5)
    assert second.repeat == 1 and math.isnan(second.clean_ppl)  # measured, undefined: not "not measured"
    assert doc_records({"arguments": [("ctx", {"noise_samples": [{"repeat": 3}]})]}) == [SampleRecord(repeat=3)]  # unversioned
    with pytest.raises(ResultsError, match="version 2"):
        doc_records({"arguments": [("ctx", {"noise_samples": [{"v": 2, "repeat": 0}]})]})
