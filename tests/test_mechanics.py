"""The `mechanics` subcommand on the tiny model: attention KL, propagation, trajectories and clusters."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_noise.analysis.measure import Setting
from lm_eval_noise.analysis.prompts import read_prompt_records
from lm_eval_noise.mechanics import study
from lm_eval_noise.mechanics.attention import attention_shift, entropy, kl_divergence
from lm_eval_noise.mechanics.capture import use_eager_attention
from lm_eval_noise.mechanics.clusters import behaviour_signatures, cluster_points, outcome_ami, truncate_completion
from lm_eval_noise.mechanics.command import main
from lm_eval_noise.mechanics.report import ATTENTION_FIELDS
from lm_eval_noise.mechanics.trajectories import Basis

PROMPTS = [{"prompt": "Once upon a time the cat"}, {"prompt": "Question: What is 3 plus 4? Answer:"}]
SCALES = (0.0, 0.01, 0.1)
SAMPLES = 3
POSITIONS = 4
HEAD_SIGMA = 0.05


@pytest.fixture(scope="module")
def loaded(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    use_eager_attention(model)
    return model, AutoTokenizer.from_pretrained(tiny_model)


def _plan(**overrides) -> study.Plan:
    settings = [Setting("embedding", s) for s in SCALES] + [
        Setting("activation", HEAD_SIGMA, options=(("noise_targets", "lm_head"),)),
        Setting("hidden", HEAD_SIGMA, noise_layer=1),
    ]
    return study.Plan(**{"settings": settings, "samples": SAMPLES, "positions": POSITIONS, **overrides})


@pytest.fixture(scope="module")
def results(loaded):
    model, tokenizer = loaded
    return study.run(model, tokenizer, PROMPTS, _plan())


def _rows(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_eager_attention_is_switched_on(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    assert use_eager_attention(model) == "sdpa"
    assert model.config._attn_implementation == "eager"
    assert use_eager_attention(model) == "eager"


def test_kl_and_entropy_known_values():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.25, 0.5, 0.25])
    assert float(kl_divergence(p, q)) == pytest.approx(0.5 * math.log(2.0))
    assert float(kl_divergence(p, p)) == 0.0
    assert float(entropy(torch.full((4,), 0.25))) == pytest.approx(math.log(4.0))
    maps = torch.softmax(torch.randn(2, 3, 4, 5, 6, generator=torch.Generator().manual_seed(0)), dim=-1)
    shift = attention_shift(maps, maps)
    assert shift["kl"].shape == (2, 3) and torch.all(shift["kl"] == 0)
    assert torch.equal(shift["entropy_clean"], shift["entropy_noisy"])


def test_scale_zero_gives_zero_kl_and_identical_trajectories(results):
    zero = _rows(results.attention, noise="embedding", scale=0.0)
    assert len(zero) == SAMPLES * 2  # two decoder layers
    assert all(r["kl"] == 0.0 and r["entropy_clean"] == r["entropy_noisy"] for r in zero)
    assert all(r["rel_norm"] == 0.0 for r in _rows(results.propagation, noise="embedding", scale=0.0))
    for prompt in range(len(PROMPTS)):
        for view, run in (("layers", "teacher_forced"), ("layers", "generated"), ("positions", "generated")):
            clean = _rows(results.trajectories, prompt=prompt, view=view, run=run, method="clean")
            assert clean
            key = [(r["layer"], r["position"], r["pc1"], r["pc2"]) for r in clean]
            for sample in range(SAMPLES):
                noisy = _rows(results.trajectories, prompt=prompt, view=view, run=run, method="noise",
                              noise="embedding", scale=0.0, sample=sample)
                assert [(r["layer"], r["position"], r["pc1"], r["pc2"]) for r in noisy] == key


def test_kl_and_perturbation_grow_with_sigma(results):
    def mean(rows, field):
        return float(np.mean([r[field] for r in rows]))

    kls = [mean(_rows(results.attention, noise="embedding", scale=s), "kl") for s in SCALES]
    assert kls[0] == 0.0 < kls[1] < kls[2], kls
    moved = [mean(_rows(results.propagation, noise="embedding", scale=s, site="head input"), "rel_norm")
             for s in SCALES]
    assert moved[0] == 0.0 < moved[1] < moved[2], moved
    # a noisy run that left the clean path somewhere: some free-running noisy path differs at sigma 0.1
    clean = _rows(results.trajectories, prompt=0, view="positions", method="clean")
    noisy = _rows(results.trajectories, prompt=0, view="positions", method="noise", noise="embedding", scale=0.1)
    assert any(n["pc1"] != clean[n["position"]]["pc1"] for n in noisy)


def test_activation_noise_at_its_site_equals_sigma(results):
    # activation noise on the head's input only: nothing moves before it, and there it is sigma (relative)
    rows = _rows(results.propagation, noise="activation", scale=HEAD_SIGMA)
    assert all(r["rel_norm"] == 0.0 for r in rows if r["site"] != "head input")
    head = [r for r in rows if r["site"] == "head input"]
    assert len(head) == SAMPLES
    for row in head:
        assert row["rel_std"] == pytest.approx(HEAD_SIGMA, rel=0.05)
        assert row["effective"] == pytest.approx(1.0, rel=0.05)
    setting = next(s for s in results.summary["settings"] if s["noise"] == "activation")
    assert setting["effective_noise_at_head"] == pytest.approx(1.0, rel=0.03)
    assert all(k == 0.0 for k in setting["kl_per_layer"])  # attention is upstream of the head
    # hidden noise after layer 1: zero before it, sigma (relative) at it
    hidden = _rows(results.propagation, noise="hidden@1", scale=HEAD_SIGMA)
    assert all(r["rel_norm"] == 0.0 for r in hidden if r["layer"] == 0)
    at_site = [r["rel_std"] for r in hidden if r["layer"] == 1]
    assert np.mean(at_site) == pytest.approx(HEAD_SIGMA, rel=0.05)


def test_pca_explained_variance_is_at_most_one(results):
    for view in ("layers", "positions"):
        ratios = results.summary["trajectories"][view]["explained_variance_ratio"]
        assert len(ratios) == 2 and all(r >= 0 for r in ratios)
        assert sum(ratios) <= 1.0 + 1e-12
    points = np.random.default_rng(0).normal(size=(20, 5))
    basis = Basis(points)
    assert 0 < sum(basis.explained_variance_ratio) <= 1.0
    assert basis.project(points[:3]).shape == (3, 2)


def test_deterministic_with_a_seed(loaded):
    model, tokenizer = loaded
    plan = study.Plan([Setting("embedding", 0.1)], SAMPLES, POSITIONS, temperature=0.8, noise_seed=3)
    first = study.run(model, tokenizer, PROMPTS[:1], plan)
    second = study.run(model, tokenizer, PROMPTS[:1], plan)
    assert first.attention == second.attention and first.propagation == second.propagation
    assert first.trajectories == second.trajectories
    assert first.summary["generations"] == second.summary["generations"]
    other = study.run(model, tokenizer, PROMPTS[:1], study.Plan(plan.settings, SAMPLES, POSITIONS, noise_seed=4))
    assert other.attention != first.attention  # another seed, other draws


def test_clusters_recover_separated_groups_and_ami():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0, 0, 0], [0, 10.0, 0, 0], [0, 0, 10.0, 0]])
    truth = np.repeat([0, 1, 2], 5)
    points = centres[truth] + rng.normal(scale=0.1, size=(15, 4))
    clustering = cluster_points(points, seed=0)
    assert clustering.k == 3 and clustering.silhouette > 0.9
    assert outcome_ami(clustering.labels, [f"text {t}" for t in truth]) == pytest.approx(1.0)
    # A known value below 0: [0,0,0,1,1,1] vs [a,b,a,b,a,b] have MI = (2/3)log(4/3) + (1/3)log(2/3); the
    # expected MI over the 20 equally likely arrangements of three a's is 0.12028, H = log 2 for both, so
    # AMI = (MI - EMI) / (log 2 - EMI) = -1/9 (enumerated by hand, not by the library under test).
    assert outcome_ami(np.array([0, 0, 0, 1, 1, 1]), ["a", "b", "a", "b", "a", "b"]) == pytest.approx(-1 / 9)
    assert math.isnan(outcome_ami(clustering.labels, ["same"] * 15))
    with pytest.raises(ValueError, match="at least 3 samples"):
        cluster_points(points[:2], seed=0)


def test_clusters_rows_and_summary(results):
    rows = _rows(results.clusters, noise="embedding", scale=0.1)
    assert rows and {r["prompt"] for r in rows} == {0, 1}
    for prompt in (0, 1):
        mine = [r for r in rows if r["prompt"] == prompt]
        assert sum(r["size"] for r in mine) == SAMPLES and len(mine) == mine[0]["k"] >= 2
    skipped = [c for c in results.summary["clusters"] if "skipped" in c]
    # scale 0 and the noise types that leave the embeddings alone have nothing to cluster
    assert {c["noise"] for c in skipped} >= {"embedding", "activation", "hidden@1"}


def test_behaviour_classes_of_code_completions():
    record = {"prompt": "def double(x):\n", "entry_point": "double",
              "test": "def check(candidate):\n    assert candidate(3) == 6\n    assert candidate(0) == 0\n"}
    completions = ["    return 2 * x\n", "    return x + x\n\ndef other():\n    pass\n", "    return x * x\n"]
    assert truncate_completion(completions[1]) == "    return x + x\n"
    signatures = behaviour_signatures(record, completions)
    assert signatures[0] == signatures[1] != signatures[2]


def test_prompt_records_keep_extra_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "def f():\\n", "test": "t", "entry_point": "f"}\n', encoding="utf-8")
    assert read_prompt_records(path) == [{"prompt": "def f():\n", "test": "t", "entry_point": "f"}]


def test_command_writes_every_file(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Once upon a time the cat\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["--model_args", "pretrained=tiny", "--prompts", str(prompts), "--noise", "embedding,lm_head",
                 "--scales", "0,0.05", "--samples", "3", "--positions", "3", "--output", str(out)])
    assert code == 0
    assert "switched from sdpa to eager" in capsys.readouterr().out
    for name in ("attention.csv", "attention.png", "propagation.csv", "propagation.png", "trajectories.csv",
                 "trajectories.png", "clusters.csv", "mechanics.json"):
        assert (out / name).stat().st_size > 0, name
    with (out / "attention.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == ATTENTION_FIELDS
        assert len(list(reader)) == 2 * 2 * 3 * 2  # noise types x scales x samples x layers
    payload = json.loads((out / "mechanics.json").read_text())
    assert payload["attention_implementation"] == {"model": "sdpa", "analysis": "eager"}
    assert [s["noise"] for s in payload["settings"]] == ["embedding", "embedding", "lm_head", "lm_head"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--noise", "embeding"], "valid values: embedding"),
        (["--noise_args", "noise_dummy_tokens=2"], "valid keys: noise_scope"),
        (["--noise_args", "noise_scope=sideways"], "valid values: per_token, per_sequence"),
        (["--scales", "-1"], "expected finite floats >= 0"),
    ],
)
def test_bad_arguments_fail_early(tmp_path, capsys, args, message):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_args", "pretrained=/nonexistent/model", "--prompts", str(prompts), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_subcommand_is_registered(capsys):
    from lm_eval_noise.cli import main as cli_main

    assert cli_main(["--help"]) == 0
    assert "mechanics" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["mechanics", "--help"])
    assert exit_info.value.code == 0
    assert "--cluster-position" in capsys.readouterr().out
