"""Paired statistics and `compare`, checked against scipy and hand-worked values on real lm-eval output."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from lm_eval_noise.results.files import ResultsError, find_results_files
from lm_eval_noise.stats import compare
from lm_eval_noise.stats.paired import bonferroni, bootstrap_ci, cliffs_delta, wilcoxon_p

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SWEEP = FIXTURES / "sweep"


def per_doc(run_dir: Path, task: str, metric: str) -> dict[str, float]:
    """{doc_hash: value} read straight from the newest samples file, independently of compare.py."""
    rf = max((f for f in find_results_files(run_dir) if task in f.tasks), key=lambda f: f.date)
    date_id = rf.path.stem.rsplit("_", 1)[1]
    path = rf.path.parent / f"samples_{task}_{date_id}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["doc_hash"]: float(r[metric]) for r in rows}


# ---- the statistics ---------------------------------------------------------------------------


def test_cliffs_delta_hand_worked():
    # b=2 beats a=1, loses to a=3; b=3 beats 1, 2 (ties 3); b=4 beats all: 6 wins, 1 loss of 9 pairs
    assert cliffs_delta([1, 2, 3], [2, 3, 4]) == pytest.approx(5 / 9)
    assert cliffs_delta([2, 3, 4], [1, 2, 3]) == pytest.approx(-5 / 9)
    assert cliffs_delta([1, 2], [3, 4]) == 1.0
    assert cliffs_delta([5, 5, 5], [5, 5]) == 0.0
    assert math.isnan(cliffs_delta([], [1]))


def test_cliffs_delta_matches_the_definition_with_ties():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 23), rng.integers(0, 5, 31)
    brute = sum(int(y > x) - int(y < x) for x, y in itertools.product(a, b)) / (len(a) * len(b))
    assert cliffs_delta(a, b) == pytest.approx(brute, abs=1e-15)


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(0)
    for n in (8, 30, 200):
        a = rng.random(n)
        b = a + rng.normal(0.05, 0.2, n)
        b[:3] = a[:3]  # some zero differences, which scipy's default drops
        assert wilcoxon_p(b - a) == sps.wilcoxon(b - a).pvalue


def test_wilcoxon_matches_scipy_on_small_samples_with_ties():
    d = np.array([0.2, 0.2, -0.2, 0.0, 0.4, 0.6])  # ties and a zero: scipy's exact permutation path
    assert wilcoxon_p(d) == sps.wilcoxon(d).pvalue


def test_wilcoxon_all_zero_is_one():
    assert wilcoxon_p(np.zeros(10)) == 1.0
    assert math.isnan(wilcoxon_p([]))


def test_bonferroni_multiplies_and_caps():
    assert bonferroni([0.01, 0.2, 0.6]) == pytest.approx([0.03, 0.6, 1.0])
    assert bonferroni([0.01], m=5) == pytest.approx([0.05])
    assert bonferroni([0.3, 0.5], m=5) == [1.0, 1.0]
    with pytest.raises(ValueError, match="comparisons must be >= 1"):
        bonferroni([0.1], m=0)


def test_bootstrap_ci_is_reproducible_and_sensible():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1.0, 100)
    lo, hi = bootstrap_ci(d)
    assert (lo, hi) == bootstrap_ci(d)  # fixed seed
    assert lo < d.mean() < hi
    # the normal-theory interval is a fair check of width for a mean of 100 draws
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)
    assert bootstrap_ci(d, seed=1) != (lo, hi)


# ---- compare on real lm-eval output -----------------------------------------------------------


def test_compare_matches_scipy_on_the_paired_samples():
    report = compare.compare_runs([SWEEP / "greedy", SWEEP / "temp-0.8", SWEEP / "embed-0.002"], tasks=["tiny_gen"], iterations=2000)
    assert report["baseline"] == "greedy" and report["bonferroni_m"] == 2
    rows = {(r["metric"], r["method"]): r for r in report["rows"]}
    assert {m for m, _ in rows} == {"pass@1,all_samples", "pass@5,all_samples", "distinct_2,all_samples", "self_bleu,all_samples"}
    for metric in ("pass@1", "distinct_2", "self_bleu"):
        base = per_doc(SWEEP / "greedy", "tiny_gen", metric)
        for run, label in ((SWEEP / "temp-0.8", "T=0.8"), (SWEEP / "embed-0.002", "embedding σ=0.002")):
            other = per_doc(run, "tiny_gen", metric)
            assert other.keys() == base.keys()
            a = np.array([base[h] for h in sorted(base)])
            b = np.array([other[h] for h in sorted(base)])
            row = rows[(f"{metric},all_samples", label)]
            assert row["n"] == 16
            assert row["wilcoxon_p"] == sps.wilcoxon(b - a).pvalue
            assert row["p_bonferroni"] == min(1.0, 2 * row["wilcoxon_p"])
            assert row["mean_diff"] == pytest.approx((b - a).mean())
            assert row["baseline_mean"] == pytest.approx(a.mean()) and row["method_mean"] == pytest.approx(b.mean())
            assert row["cliffs_delta"] == pytest.approx(cliffs_delta(a, b))
            assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
    # a sanity check of direction: sampling is far more diverse than greedy
    assert rows[("distinct_2,all_samples", "T=0.8")]["cliffs_delta"] == 1.0


def test_identical_runs_give_p_one_and_no_effect():
    report = compare.compare_runs([SWEEP / "embed-0.01", SWEEP / "embed-0.01"], iterations=500)
    assert report["rows"]
    for row in report["rows"]:
        assert row["wilcoxon_p"] == 1.0 and row["p_bonferroni"] == 1.0
        assert row["cliffs_delta"] == 0.0 and row["mean_diff"] == 0.0
        assert row["ci_low"] == row["ci_high"] == 0.0
    labels = [r["label"] for r in report["runs"]]
    assert len(set(labels)) == 2 and all(label.startswith("embedding σ=0.01 [") for label in labels)


def test_mismatched_problems_are_refused():
    with pytest.raises(ResultsError) as err:
        compare.compare_runs([SWEEP / "greedy", FIXTURES / "other_problems" / "greedy"], tasks=["tiny_gen"])
    msg = str(err.value)
    assert "not on the same problems for task 'tiny_gen'" in msg
    assert "has 16" in msg and "has 8" in msg
    assert "only in greedy" in msg and "doc_id 8 (doc_hash " in msg


def test_compare_cli(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = compare.main([str(SWEEP / "greedy"), str(SWEEP / "temp-1.5"), str(SWEEP / "embed-0.002"),
                       "--metrics", "pass@5,self_bleu", "--json", str(out), "--iterations", "300"])
    assert rc == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "| tiny_gen | self_bleu ↓ | T=1.5 vs greedy | 16 |" in captured.out
    assert "| tiny_gen | pass@5 ↑ | embedding σ=0.002 vs greedy | 16 |" in captured.out
    assert "| tiny_mc |" not in captured.out  # --metrics picks pass@5/self_bleu, which tiny_mc lacks
    assert "Bonferroni" in captured.out and "300 resamples" in captured.out
    report = json.loads(out.read_text())
    assert report["bootstrap"] == {"iterations": 300, "seed": 0, "confidence": 0.95, "method": "percentile"}
    assert {r["task"] for r in report["rows"]} == {"tiny_gen"}
    assert len(report["rows"]) == 4


def test_compare_cli_errors(capsys):
    assert compare.main([str(SWEEP / "greedy"), str(FIXTURES / "other_problems" / "greedy")]) == 2
    assert "not on the same problems" in capsys.readouterr().err
    assert compare.main([str(SWEEP / "greedy")]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert compare.main([str(SWEEP / "greedy"), str(SWEEP / "temp-0.8"), "--metrics", "bleu", "--tasks", "tiny_gen"]) == 2
    assert "metric 'bleu' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main([str(SWEEP / "greedy"), str(SWEEP / "temp-0.8"), "--iterations", "0"])


def test_compare_takes_results_json_paths():
    a = max((f for f in find_results_files(SWEEP / "greedy") if "tiny_gen" in f.tasks), key=lambda f: f.date).path
    b = next(f.path for f in find_results_files(SWEEP / "wa-0.03"))
    report = compare.compare_runs([a, b], metrics=["distinct_2"], iterations=200)
    (row,) = report["rows"]
    assert row["method"] == "weight+activation σ=0.03" and row["metric"] == "distinct_2,all_samples" and row["n"] == 16


def test_compare_refuses_a_folder_mixing_seeds(tmp_path):
    import shutil

    rf = max((f for f in find_results_files(SWEEP / "embed-0.002") if "tiny_gen" in f.tasks), key=lambda f: f.date)
    for seed in (0, 1):
        dst = tmp_path / "embed" / f"seed-{seed}"
        dst.mkdir(parents=True)
        data = json.loads(rf.path.read_text())
        data["config"]["noise"]["noise_seed"] = seed
        (dst / rf.path.name).write_text(json.dumps(data))
        shutil.copy(rf.samples_path("tiny_gen"), dst)
    with pytest.raises(ResultsError, match="holds tiny_gen runs with several seeds \\(0, 1\\)"):
        compare.compare_runs([SWEEP / "greedy", tmp_path / "embed"])
    report = compare.compare_runs([SWEEP / "greedy", tmp_path / "embed" / "seed-1"], tasks=["tiny_gen"], iterations=100)
    assert {r["n"] for r in report["rows"]} == {16}


def test_compare_pairs_by_doc_id_without_hashes(tmp_path):
    import shutil

    for name in ("greedy", "temp-0.8"):
        shutil.copytree(SWEEP / name, tmp_path / name)
    for path in (tmp_path / "temp-0.8").rglob("samples_*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r.pop("doc_hash")
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = compare.compare_runs([tmp_path / "greedy", tmp_path / "temp-0.8"], tasks=["tiny_gen"], iterations=200)
    assert all(r["n"] == 16 for r in report["rows"])


# ---- unreadable results files ------------------------------------------------------------------


def corrupt_copy(src: Path, dst: Path) -> Path:
    """Copy a run folder and truncate its newest results JSON mid-write; returns the broken file."""
    import shutil

    shutil.copytree(src, dst)
    newest = max(find_results_files(dst), key=lambda f: f.date).path
    newest.write_text(newest.read_text()[:200])
    return newest


def test_compare_names_a_corrupt_results_file(tmp_path, capsys):
    broken = corrupt_copy(SWEEP / "temp-1.5", tmp_path / "temp-1.5")  # its only run: tiny_gen and tiny_mc
    (tmp_path / "temp-1.5" / "extra").mkdir()
    (tmp_path / "temp-1.5" / "extra" / "results_2026-01-01T00-00-00.json").write_text("")  # empty, no samples
    with pytest.raises(ResultsError) as err:
        compare.compare_runs([SWEEP / "greedy", tmp_path / "temp-1.5"], iterations=100)
    assert "no lm-eval results JSON found" in str(err.value) and str(broken) in str(err.value)
    assert "warning: skipped" in capsys.readouterr().err

    # A run folder holding a good file (tiny_gen) and a corrupt one (tiny_gen and tiny_mc, judging by its
    # samples files): tiny_mc is reported as unreadable there, not as "not in every run".
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(SWEEP / "wa-0.03", mixed)
    shutil.copytree(SWEEP / "temp-1.5", mixed / "other")
    (other,) = [f.path for f in find_results_files(mixed / "other")]
    other.write_text('{"results": {')
    report = compare.compare_runs([SWEEP / "temp-1.5", mixed], iterations=100)
    err = capsys.readouterr().err
    assert f"warning: skipped {other}: not valid JSON" in err and "it held tiny_gen, tiny_mc" in err
    (note,) = [n for n in report["notes"] if "tiny_mc" in n]
    assert "could not be read" in note and str(other) in note and "not in every run" not in note
    assert {r["task"] for r in report["rows"]} == {"tiny_gen"}


def test_compare_strict_refuses_a_corrupt_file(tmp_path, capsys):
    broken = corrupt_copy(SWEEP / "embed-0.002", tmp_path / "embed")
    assert compare.main([str(SWEEP / "greedy"), str(tmp_path / "embed"), "--iterations", "100"]) == 0
    assert str(broken) in capsys.readouterr().err
    assert compare.main([str(SWEEP / "greedy"), str(tmp_path / "embed"), "--iterations", "100", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "error: --strict: 1 results file under" in err and str(broken) in err


def test_compare_footer_counts_comparisons_in_words(capsys):
    assert compare.main([str(SWEEP / "greedy"), str(SWEEP / "temp-0.8"), "--iterations", "100", "--tasks", "tiny_gen"]) == 0
    out = capsys.readouterr().out
    assert "(1 comparison)" in out and "comparisons)" not in out
    assert compare.main([str(SWEEP / "greedy"), str(SWEEP / "temp-0.8"), str(SWEEP / "temp-1.5"),
                         "--iterations", "100", "--tasks", "tiny_gen"]) == 0
    assert "(2 comparisons)" in capsys.readouterr().out


def with_clean_ppl(src: Path, dst: Path, ppl_of) -> Path:
    """A copy of a fixture run whose samples carry hf-noisy's per-sample records with clean_ppl."""
    rf = max((f for f in find_results_files(src) if "tiny_gen" in f.tasks), key=lambda f: f.date)
    dst.mkdir(parents=True)
    (dst / rf.path.name).write_text(rf.path.read_text())
    samples = rf.samples_path("tiny_gen")
    lines = []
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        ppls = ppl_of(row["doc_id"])
        row["arguments"]["gen_args_0"]["arg_1"]["noise_samples"] = [
            {"v": 1, "repeat": i, "clean_ppl": p} for i, p in enumerate(ppls)]
        lines.append(json.dumps(row))
    (dst / samples.name).write_text("\n".join(lines) + "\n")
    return dst


def test_compare_tests_clean_ppl_read_by_the_leaderboards_reader(tmp_path):
    base = with_clean_ppl(SWEEP / "greedy", tmp_path / "greedy", lambda d: [2.0, 2.0])
    other = with_clean_ppl(SWEEP / "temp-0.8", tmp_path / "t08", lambda d: [3.0 + d, None, 5.0 + d])  # null: empty sample
    report = compare.compare_runs([base, other], tasks=["tiny_gen"], iterations=500)
    (row,) = [r for r in report["rows"] if r["metric"] == "clean_ppl,none"]
    diffs = np.array([(3.0 + d + 5.0 + d) / 2 - 2.0 for d in range(16)])
    assert row["n"] == 16 and row["direction"] == -1  # lower is better
    assert row["mean_diff"] == pytest.approx(diffs.mean())
    assert row["wilcoxon_p"] == sps.wilcoxon(diffs).pvalue
