"""The diversity tasks (creative_writing*, problem_generation*, gsm8k_pass_at_k*) and the task-authoring example.

Fast tests load each task YAML with lm-eval's TaskManager and check `process_results` against
hand-worked values. The `test_e2e_*` tests (marked `slow`) run every offline task through
`lm_eval.simple_evaluate` on the tiny trained model.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import datasets
import pytest
import yaml
from lm_eval.tasks import TaskManager

from lm_eval_noise import tasks_dir
from lm_eval_noise.metrics import self_bleu

REPO = Path(__file__).resolve().parents[1]
TASKS = tasks_dir()
AUTHORING_DIR = Path(__file__).resolve().parent / "fixtures" / "authoring_example"
TASK_FOLDERS = ("creative_writing", "problem_generation", "gsm8k_pass_at_k")
FILTER = "all_samples"

SEMANTIC = ("semantic_diversity", "semantic_vendi", "compression_ratio")
CREATIVE_MAY_BE_NAN = ("distinct_1", "distinct_2", "distinct_3", "self_bleu", "self_bleu_multi_ref", "edit_distance", *SEMANTIC)
CREATIVE_METRICS = (
    "unique_ratio", *CREATIVE_MAY_BE_NAN, "mean_length", *(f"{m}_measured" for m in CREATIVE_MAY_BE_NAN),
)
PROBLEM_MAY_BE_NAN = ("unique_names", "unique_signatures", "docstring_distinct_2", "docstring_self_bleu", *SEMANTIC)
PROBLEM_METRICS = ("valid", *PROBLEM_MAY_BE_NAN, *(f"{m}_measured" for m in PROBLEM_MAY_BE_NAN))
MAY_BE_NAN = {*CREATIVE_MAY_BE_NAN, *PROBLEM_MAY_BE_NAN}
GSM8K_METRICS = ("acc_first", "pass@1", "pass@5", "pass@10", "maj_acc", "answer_diversity")

# task -> (metrics, number of docs, do_sample, temperature)
OFFLINE_TASKS = {
    "creative_writing": (CREATIVE_METRICS, 48, False, 0.0),
    "creative_writing_t09": (CREATIVE_METRICS, 48, True, 0.9),
    "creative_writing_t12": (CREATIVE_METRICS, 48, True, 1.2),
    "problem_generation": (PROBLEM_METRICS, 6, False, 0.0),
    "problem_generation_t08": (PROBLEM_METRICS, 6, True, 0.8),
    "problem_generation_chat": (PROBLEM_METRICS, 6, False, 0.0),
    "gsm8k_pass_at_k_fixture": (GSM8K_METRICS, 20, False, 0.0),
}
HUB_TASKS = {"gsm8k_pass_at_k": (GSM8K_METRICS, None, False, 0.0)}


class _TagsIgnored(yaml.SafeLoader):
    """Reads a task YAML's structure only: lm-eval's `!function` tags become None."""


_TagsIgnored.add_multi_constructor("!", lambda loader, suffix, node: None)


def read_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TagsIgnored)


def _manager(path: Path) -> TaskManager:
    return TaskManager(include_path=str(path), include_defaults=False)


@pytest.fixture(scope="module")
def tm() -> TaskManager:
    return _manager(TASKS)


@pytest.fixture(scope="module")
def loaded(tm) -> dict:
    """Every offline task, built once (the hub task is checked separately, without the network)."""
    return tm.load(list(OFFLINE_TASKS))["tasks"]


def _k(responses: list[str]) -> list[list[str]]:
    """What lm-eval hands process_results for a generate_until doc with `repeats`: [K responses]."""
    return [responses]


# --------------------------------------------------------------------------- loading


def test_every_yaml_is_indexed(tm):
    # The index skips a YAML it cannot read without a word above debug level: check each one is there.
    expected = {
        read_yaml(p)["task"]
        for folder in TASK_FOLDERS
        for p in (TASKS / folder).glob("*.yaml")
    }
    assert expected == set(OFFLINE_TASKS) | set(HUB_TASKS)
    assert expected <= set(tm.all_tasks)


@pytest.mark.parametrize("name", sorted(OFFLINE_TASKS))
def test_offline_task_loads(loaded, name):
    metrics, n_docs, do_sample, temperature = OFFLINE_TASKS[name]
    task = loaded[name]
    cfg = task.config
    assert cfg.output_type == "generate_until"
    assert cfg.repeats == 10
    assert cfg.generation_kwargs["do_sample"] is do_sample
    assert cfg.generation_kwargs["temperature"] == temperature
    assert [f["name"] for f in cfg.filter_list] == [FILTER]
    assert len(task.eval_docs) == n_docs
    assert set(task.aggregation()) == set(metrics)
    from lm_eval.api.metrics import mean, nanmean

    from lm_eval_noise.metrics.measured import count

    for metric, fn in task.aggregation().items():
        want = count if metric.endswith("_measured") else nanmean if metric in MAY_BE_NAN else mean
        assert fn is want, (metric, fn)
    assert set(task.higher_is_better()) == set(metrics)
    prompt = task.doc_to_text(task.eval_docs[0])
    assert isinstance(prompt, str) and prompt.strip()


def test_keep_all_filter_keeps_every_repeat(loaded):
    # The task's own filter_list, built the way lm-eval builds it, on one doc's K responses.
    from lm_eval.api.instance import Instance
    from lm_eval.filters import build_filter_ensemble

    task = loaded["creative_writing"]
    (spec,) = task.config.filter_list
    components = [[f["function"], {k: v for k, v in f.items() if k != "function"}] for f in spec["filter"]]
    ensemble = build_filter_ensemble(spec["name"], components)
    inst = Instance(request_type="generate_until", doc=task.eval_docs[0], arguments=("p", {}), idx=0)
    inst.resps = [f"story {i}" for i in range(10)]
    ensemble.apply([inst])
    assert inst.filtered_resps[FILTER] == [f"story {i}" for i in range(10)]


def test_hub_task_reads_gsm8k_main(tm, monkeypatch):
    fixture = _manager(TASKS).load(["gsm8k_pass_at_k_fixture"])["tasks"]["gsm8k_pass_at_k_fixture"]
    calls = []

    def fake_load_dataset(path=None, name=None, **kwargs):
        calls.append((path, name))
        return fixture.dataset

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = tm.load(["gsm8k_pass_at_k"])["tasks"]["gsm8k_pass_at_k"]
    assert calls == [("openai/gsm8k", "main")]
    assert task.config.test_split == "test" and task.config.fewshot_split == "train"
    assert task.config.num_fewshot == 5
    assert task.config.repeats == 10
    assert set(task.aggregation()) == set(GSM8K_METRICS)


def test_lm_eval_own_gsm8k_is_plain_generate_until():
    # lm-eval's gsm8k runs on hf-noisy as it is: a plain generate_until task with standard gen kwargs.
    import lm_eval.tasks

    cfg = read_yaml(Path(lm_eval.tasks.__file__).parent / "gsm8k" / "gsm8k.yaml")
    assert cfg["output_type"] == "generate_until"
    assert set(cfg["generation_kwargs"]) <= {"until", "do_sample", "temperature", "max_gen_toks"}
    assert cfg["generation_kwargs"]["do_sample"] is False
    assert "process_results" not in cfg and "custom_dataset" not in cfg


def test_creative_openings_data():
    rows = [json.loads(line) for line in (TASKS / "creative_writing" / "openings.jsonl").read_text().splitlines()]
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["opening"] for r in rows}) == len(rows)
    assert len({r["genre"] for r in rows}) >= 8
    for r in rows:
        sentences = [s for s in re.split(r"(?<=[.!?])['\"]?\s+", r["opening"]) if s]
        assert 1 <= len(sentences) <= 3, r


def test_creative_openings_file_override(tm, tmp_path):
    custom = tmp_path / "mine.jsonl"
    custom.write_text(json.dumps({"id": "x", "genre": "test", "opening": "It began."}) + "\n")
    tm2 = TaskManager(include_path=str(TASKS), include_defaults=False, metadata={"openings_file": str(custom)})
    task = tm2.load(["creative_writing"])["tasks"]["creative_writing"]
    assert [d["opening"] for d in task.eval_docs] == ["It began."]


# --------------------------------------------------------------------------- creative_writing


def test_creative_identical_samples(loaded):
    task = loaded["creative_writing_t09"]
    out = task.process_results(task.eval_docs[0], _k(["one two three four five"] * 10))
    assert all(out.pop(f"{m}_measured") == 1 for m in CREATIVE_MAY_BE_NAN)
    assert out.pop("compression_ratio") > 5  # ten copies: gzip stores the text about once
    assert out == pytest.approx({
        "unique_ratio": 0.1,           # 1 distinct / 10
        "distinct_1": 5 / 50,          # 5 unique unigrams / 50
        "distinct_2": 4 / 40,
        "distinct_3": 3 / 30,
        "self_bleu": 1.0,
        "self_bleu_multi_ref": 1.0,
        "edit_distance": 0.0,
        "semantic_diversity": 0.0,     # one meaning
        "semantic_vendi": 1.0,         # one effective sample
        "mean_length": 5.0,
    })


def test_creative_mixed_samples(loaded):
    task = loaded["creative_writing"]
    texts = ["the cat sat", " the cat sat\n", "the cat ran", "a dog barked loudly"]
    out = task.process_results(task.eval_docs[0], _k(texts))
    # Responses are whitespace-trimmed: the first two are the same sample.
    assert out["unique_ratio"] == pytest.approx(3 / 4)
    # 13 words, 8 distinct; 9 bigrams, 6 distinct; 5 trigrams, 4 distinct.
    assert out["distinct_1"] == pytest.approx(8 / 13)
    assert out["distinct_2"] == pytest.approx(6 / 9)
    assert out["distinct_3"] == pytest.approx(4 / 5)
    assert out["mean_length"] == pytest.approx(13 / 4)
    stripped = [t.strip() for t in texts]
    assert out["self_bleu"] == pytest.approx(self_bleu(stripped, method="max"))
    assert out["self_bleu_multi_ref"] == pytest.approx(self_bleu(stripped, method="multi_ref"))
    assert 0.0 < out["edit_distance"] < 1.0


def test_creative_edit_distance_two_samples(loaded):
    task = loaded["creative_writing"]
    out = task.process_results(task.eval_docs[0], _k(["abcd", "abce"]))
    assert out["edit_distance"] == pytest.approx(1 / 4)  # one substitution / 4 characters
    assert out["unique_ratio"] == 1.0
    assert out["distinct_1"] == 1.0
    assert math.isnan(out["distinct_2"]) and out["distinct_2_measured"] == 0  # one-word samples: no bigrams
    assert out["self_bleu"] == 0.0 and out["self_bleu_measured"] == 1  # no unigram in common


def test_creative_degenerate_sets_are_not_measured(loaded):
    task = loaded["creative_writing"]
    empty = task.process_results(task.eval_docs[0], _k([""] * 10))
    for metric in CREATIVE_MAY_BE_NAN:
        assert math.isnan(empty[metric]) and empty[f"{metric}_measured"] == 0, metric
    assert empty["unique_ratio"] == pytest.approx(0.1)  # ten equal answers
    # Ten copies of a two-word ending are collapsed output: least diverse, not "most diverse".
    collapsed = task.process_results(task.eval_docs[0], _k(["The end."] * 10))
    assert collapsed["self_bleu"] == pytest.approx(1.0) and collapsed["self_bleu_multi_ref"] == pytest.approx(1.0)
    assert collapsed["edit_distance"] == 0.0 and collapsed["distinct_2"] == pytest.approx(0.1)
    assert math.isnan(collapsed["distinct_3"])  # two words have no trigram


def test_nan_prompts_are_skipped_and_counted_by_the_tasks_aggregation(loaded):
    task = loaded["creative_writing"]
    docs = task.eval_docs
    per_doc = [
        task.process_results(docs[0], _k(["a cat sat here", "a dog ran there"])),
        task.process_results(docs[1], _k(["", ""])),  # not measurable
        task.process_results(docs[2], _k(["the same words", "the same words"])),
    ]
    agg = task.aggregation()
    assert agg["self_bleu"]([d["self_bleu"] for d in per_doc]) == pytest.approx(
        (per_doc[0]["self_bleu"] + per_doc[2]["self_bleu"]) / 2
    )
    assert agg["self_bleu_measured"]([d["self_bleu_measured"] for d in per_doc]) == 2


# --------------------------------------------------------------------------- problem_generation

PROBLEM_RESPONSES = [
    ' add(a: int, b: int) -> int:\n    """Return a plus b."""\n',                      # valid
    ' add(x, y):\n    """Return x plus y."""\n    return x + y\n',                        # valid, body allowed
    ' add(a: int, b: int) -> int:\n    """Return a plus b."""\n',                      # valid, repeat of 1
    " mul(a, b):\n    return a * b\n",                                                   # no docstring
    ' broken(a, b:\n    """oops"""\n',                                                  # syntax error
    '```python\ndef scale(xs: list, k: float) -> list:\n    """Multiply every element of xs by k."""\n```',  # fenced
    ' first(xs):\n    """Return the first element."""\n\nclass Foo:\n    pass\n',        # a class too
    ' f(a):\n    """Doc f."""\n\ndef g(b):\n    """Doc g."""\n',                         # two functions
]


def test_problem_generation_hand_worked(loaded):
    task = loaded["problem_generation"]
    doc = task.eval_docs[0]
    assert doc["prompt"].endswith(doc["prefix"]) and doc["prefix"] == "def"
    out = task.process_results(doc, _k(PROBLEM_RESPONSES))
    assert all(out[f"{m}_measured"] == 1 for m in PROBLEM_MAY_BE_NAN)
    assert out["valid"] == pytest.approx(4 / 8)
    assert out["unique_names"] == pytest.approx(2 / 4)  # add, scale
    # add(a: int, b: int) -> int, add(x, y), scale(xs: list, k: float) -> list
    assert out["unique_signatures"] == pytest.approx(3 / 4)
    # Docstring bigrams: 3 + 3 + 3 + 6 = 15, of which 12 distinct.
    assert out["docstring_distinct_2"] == pytest.approx(12 / 15)
    # Self-BLEU (max over the others, BLEU-4, method1 smoothing), per docstring:
    # "Return a plus b." twice -> 1.0 each; "Multiply ..." shares no word -> 0.0;
    # "Return x plus y." vs "Return a plus b.": p1 = 2/4, p2..p4 have no match -> 0.1/3, 0.1/2, 0.1/1; BP = 1.
    second = math.exp(0.25 * (math.log(2 / 4) + math.log(0.1 / 3) + math.log(0.1 / 2) + math.log(0.1 / 1)))
    assert out["docstring_self_bleu"] == pytest.approx((1.0 + second + 1.0 + 0.0) / 4)


@pytest.mark.parametrize("n_valid", [0, 1])
def test_problem_generation_too_few_valid_is_not_measured(loaded, n_valid):
    task = loaded["problem_generation_t08"]
    responses = [PROBLEM_RESPONSES[0]] * n_valid + [" oops(:", " nope"] * 5
    out = task.process_results(task.eval_docs[0], _k(responses[:10]))
    assert out["valid"] == pytest.approx(n_valid / 10)
    # One valid problem cannot repeat another: not "perfectly diverse" (names 1.0, Self-BLEU 0.0).
    for metric in PROBLEM_MAY_BE_NAN:
        assert math.isnan(out[metric]) and out[f"{metric}_measured"] == 0, metric


# --------------------------------------------------------------------------- gsm8k_pass_at_k

GSM8K_RESPONSES = [
    "5 + 7 = 12 apples.\n#### 12",        # 12, right ("####")
    "The answer is 12.",                    # 12, right
    "So she pays $12.00 in total.",         # 12, right (last number)
    "The answer is 13, not 12.",            # 13: "The answer is" beats the last number
    "#### 13\nThe answer is 12.",           # 13: "####" comes first
    "I give up.",                           # no answer
    "\\boxed{12}",                          # 12, right
    "It is 2 * 6 = 12",                     # 12, right (last number)
    "The answer is 13.",                    # 13
    "Total: 1,200 apples",                  # 1200
]


def test_gsm8k_hand_worked(loaded):
    task = loaded["gsm8k_pass_at_k_fixture"]
    doc = {"question": "q", "answer": "Some work.\n#### 12"}
    out = task.process_results(doc, _k(GSM8K_RESPONSES))
    # n = 10, c = 5; pass@5 = 1 - C(5, 5) / C(10, 5) = 1 - 1/252.
    assert out == pytest.approx({
        "acc_first": 1.0,
        "pass@1": 0.5,
        "pass@5": 1 - 1 / 252,
        "pass@10": 1.0,
        "maj_acc": 1.0,              # votes: 12 x5, 13 x3, 1200 x1
        "answer_diversity": 0.3,     # {12, 13, 1200} / 10
    })


def test_gsm8k_wrong_majority_and_small_k(loaded):
    task = loaded["gsm8k_pass_at_k_fixture"]
    doc = {"question": "q", "answer": "#### 1,200"}
    out = task.process_results(doc, _k(["#### 7", "The answer is 7", "That makes $1,200."]))
    assert out["acc_first"] == 0.0
    assert out["pass@1"] == pytest.approx(1 / 3)
    assert math.isnan(out["pass@5"]) and math.isnan(out["pass@10"])  # k > K
    assert out["maj_acc"] == 0.0
    assert out["answer_diversity"] == pytest.approx(2 / 3)


def test_gsm8k_fixture_answers_extract_to_targets(loaded):
    task = loaded["gsm8k_pass_at_k_fixture"]
    utils = task.config.process_results.__globals__
    extract, target = utils["extract_answer"], utils["target_answer"]
    docs = list(task.eval_docs) + list(task.dataset["train"])
    assert len(task.eval_docs) == 20 and len(task.dataset["train"]) == 5
    for doc in docs:
        assert re.fullmatch(r"-?\d+", target(doc)), doc
        assert extract(doc["answer"]) == target(doc)
    assert [utils["normalize_number"](s) for s in ("$1,200.50", "-7", "0.50", "3.", "abc")] == [
        "1200.5", "-7", "0.5", "3", None,
    ]
    assert extract("He has 10 - 3") == "3"  # a minus between numbers is not a sign
    assert extract("It fell to -4 degrees.") == "-4"
    assert extract("No idea.") is None


# --------------------------------------------------------------------------- authoring example

YAML_MARKERS = ("<!-- authoring-example:yaml:start -->", "<!-- authoring-example:yaml:end -->")
UTILS_MARKERS = ("<!-- authoring-example:utils:start -->", "<!-- authoring-example:utils:end -->")


def _doc_block(markers: tuple[str, str]) -> str | None:
    """The fenced code between `markers` in README.md if it has them, else in docs/task_authoring.md."""
    for source in (REPO / "README.md", REPO / "docs" / "task_authoring.md"):
        text = source.read_text(encoding="utf-8") if source.exists() else ""
        if markers[0] in text and markers[1] in text:
            between = text.split(markers[0], 1)[1].split(markers[1], 1)[0]
            fence = re.search(r"```[^\n]*\n(.*?)```", between, re.DOTALL)
            assert fence, f"no code fence between the markers in {source}"
            return fence.group(1)
    return None


def test_authoring_doc_yaml_matches_fixture():
    block = _doc_block(YAML_MARKERS)
    assert block is not None, "docs/task_authoring.md lacks the authoring-example:yaml markers"
    assert block == (AUTHORING_DIR / "poem_diversity.yaml").read_text(encoding="utf-8")


def test_authoring_doc_utils_matches_fixture():
    block = _doc_block(UTILS_MARKERS)
    if block is None:  # README carries the YAML only: the utils block then lives in docs/task_authoring.md
        pytest.skip("no utils block between markers")
    assert block == (AUTHORING_DIR / "utils.py").read_text(encoding="utf-8")


def test_authoring_example_loads_and_scores():
    task = _manager(AUTHORING_DIR).load(["poem_diversity"])["tasks"]["poem_diversity"]
    assert task.config.repeats == 5
    assert len(task.eval_docs) == 4
    assert task.doc_to_text(task.eval_docs[0]) == "Write a short poem about the sea.\n"
    same = task.process_results(task.eval_docs[0], _k(["waves fold over the grey stones"] * 5))
    # 5 identical 6-word poems: 5 distinct bigrams out of 25; every poem equals its neighbours.
    assert same == pytest.approx({"distinct_2": 5 / 25, "self_bleu": 1.0, "distinct_2_measured": 1, "self_bleu_measured": 1})
    apart = task.process_results(task.eval_docs[0], _k(["red sky", "blue sea", "green hill", "old moon", "cold rain"]))
    assert apart == pytest.approx({"distinct_2": 1.0, "self_bleu": 0.0, "distinct_2_measured": 1, "self_bleu_measured": 1})
    lone = task.process_results(task.eval_docs[0], _k(["one poem at last", "", "", "", ""]))
    assert math.isnan(lone["self_bleu"]) and lone["self_bleu_measured"] == 0


# --------------------------------------------------------------------------- end to end (tiny model)

E2E_LIMIT = 2
E2E_GEN_KWARGS = {"max_gen_toks": 12}


def _model_and_args(tiny_model: str) -> tuple[str, str]:
    """`hf-noisy` with embedding noise once the project's model class is present, else plain `hf`."""
    if importlib.util.find_spec("lm_eval_noise.model") is not None:
        return "hf-noisy", f"pretrained={tiny_model},noise=embedding,noise_scale=0.05"
    return "hf", f"pretrained={tiny_model}"


@pytest.fixture(scope="module")
def e2e_results(tiny_model):
    import lm_eval

    model, model_args = _model_and_args(tiny_model)
    task_manager = TaskManager(include_path=[str(TASKS), str(AUTHORING_DIR)], include_defaults=False)
    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[*OFFLINE_TASKS, "poem_diversity"],
        task_manager=task_manager,
        limit=E2E_LIMIT,
        gen_kwargs=dict(E2E_GEN_KWARGS),
        batch_size=10,
        device="cpu",
        log_samples=True,
    )
    assert results is not None
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OFFLINE_TASKS))
def test_e2e_task_reports_every_metric(e2e_results, name):
    metrics = OFFLINE_TASKS[name][0]
    row = e2e_results["results"][name]
    for metric in metrics:
        value = row[f"{metric},{FILTER}"]
        if metric.endswith("_measured"):  # a count of prompts, without a stderr
            assert value == int(value) and 0 <= value <= E2E_LIMIT, (metric, value)
            continue
        measured = row.get(f"{metric}_measured,{FILTER}", E2E_LIMIT)
        if measured == 0:
            assert math.isnan(value), (metric, value)
            continue
        assert isinstance(value, float) and math.isfinite(value), (metric, value)
        stderr = row[f"{metric}_stderr,{FILTER}"]
        assert stderr != "N/A" or measured < 2, (metric, stderr)
    samples = e2e_results["samples"][name]
    assert len(samples) == E2E_LIMIT
    for sample in samples:
        # One request per doc; its filtered response is the list of all K repeats.
        assert [len(r) for r in sample["filtered_resps"]] == [10]
    assert e2e_results["configs"][name]["generation_kwargs"]["max_gen_toks"] == E2E_GEN_KWARGS["max_gen_toks"]


@pytest.mark.slow
def test_e2e_high_temperature_varies(e2e_results):
    assert e2e_results["results"]["creative_writing_t12"][f"unique_ratio,{FILTER}"] >= 0.5  # most of the K = 10 differ, not just one


@pytest.mark.slow
def test_e2e_authoring_example(e2e_results):
    row = e2e_results["results"]["poem_diversity"]
    for metric in ("distinct_2", "self_bleu"):
        value, measured = row[f"{metric},{FILTER}"], row[f"{metric}_measured,{FILTER}"]
        assert 0 <= measured <= E2E_LIMIT
        assert math.isfinite(value) if measured else math.isnan(value), (metric, value, measured)
    assert all([len(r) for r in s["filtered_resps"]] == [5] for s in e2e_results["samples"]["poem_diversity"])


def test_read_jsonl_names_the_file_and_line_of_a_bad_row(tmp_path):
    from lm_eval_noise.task_utils import read_jsonl

    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(good)["a"] == [1, 2]
    for name, second in (("broken.jsonl", "{oops"), ("scalar.jsonl", "123")):
        path = tmp_path / name
        path.write_text('{"a": 1}\n' + second + "\n")
        with pytest.raises(ValueError, match=rf"{name}:2: not a JSON object"):
            read_jsonl(path)
