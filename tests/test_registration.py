"""Registration: the stock `lm_eval` command, `python -m lm_eval_noise`, the entry point and the hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from lm_eval_noise import tasks_dir

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_hook_is_armed_at_startup_without_heavy_imports():
    state = json.loads(_python(
        "import sys, json; print(json.dumps({m: m in sys.modules for m in "
        "('lm_eval_noise_hook', 'torch', 'lm_eval', 'lm_eval_noise', 'transformers')}))"
    ))
    assert state == {"lm_eval_noise_hook": True, "torch": False, "lm_eval": False,
                     "lm_eval_noise": False, "transformers": False}


def test_registry_keeps_builtins_and_adds_hf_noisy_lazily():
    names = json.loads(_python(
        "import sys, json; from lm_eval.api.registry import model_registry as r; "
        "print(json.dumps({'names': sorted(r.keys()), 'loaded': 'lm_eval_noise.model' in sys.modules}))"
    ))
    assert {"hf", "hf-auto", "vllm", "dummy", "steered", "hf-noisy"} <= set(names["names"])
    assert names["loaded"] is False  # a placeholder until someone asks for it
    assert _python(
        "from lm_eval.api.registry import get_model; c = get_model('hf-noisy'); print(c.__module__ + ':' + c.__name__)"
    ) == "lm_eval_noise.model:HFNoisyLM"


def test_entry_point_is_declared():
    (ep,) = [ep for ep in entry_points(group="lm_eval.models") if ep.name == "hf-noisy"]
    from lm_eval_noise.model import HFNoisyLM

    assert ep.load() is HFNoisyLM


def test_wheel_ships_hook_pth_and_tasks(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"lm_eval_noise.pth", "lm_eval_noise_hook.py", "lm_eval_noise/model.py"} <= names
    assert "lm_eval_noise/tasks/noise_demo/noise_demo.yaml" in names
    assert zipfile.ZipFile(wheel).read("lm_eval_noise.pth").decode().strip() == "import lm_eval_noise_hook"


def _run_cli(command: list[str], out_dir: Path, tiny_model: str) -> dict:
    args = [
        "--model", "hf-noisy",
        "--model_args", f"pretrained={tiny_model},dtype=float32,noise=embedding,noise_scale=0.05,noise_seed=3",
        "--include_path", str(tasks_dir()), "--tasks", "noise_demo", "--limit", "2", "--batch_size", "2",
        "--device", "cpu", "--gen_kwargs", "max_gen_toks=8", "--output_path", str(out_dir), "--log_samples",
    ]
    run = subprocess.run(command + args, capture_output=True, text=True, env=ENV, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = out_dir.rglob("results_*.json")
    return json.loads(results_file.read_text())


@pytest.mark.slow
def test_stock_lm_eval_cli_runs_hf_noisy(tmp_path, tiny_model):
    lm_eval_bin = str(Path(sys.executable).with_name("lm_eval"))
    stock = _run_cli([lm_eval_bin], tmp_path / "stock", tiny_model)
    assert stock["config"]["model"] == "hf-noisy"
    assert stock["config"]["noise"]["noise"] == ["embedding"]
    assert stock["config"]["noise"]["noise_seed"] == 3
    assert "distinct_2,all_samples" in stock["results"]["noise_demo"]
    fallback = _run_cli([sys.executable, "-m", "lm_eval_noise"], tmp_path / "module", tiny_model)
    assert fallback["results"]["noise_demo"] == stock["results"]["noise_demo"]


def test_module_help_lists_subcommands():
    text = subprocess.run(
        [sys.executable, "-m", "lm_eval_noise", "--help"], capture_output=True, text=True, env=ENV, timeout=120
    ).stdout
    for name in ("demo", "sweep", "leaderboard", "plot", "compare", "score-code", "alpha", "bench"):
        assert name in text


def _responses(out_dir: Path) -> list:
    (samples,) = out_dir.rglob("samples_noise_demo_*.jsonl")
    return sorted((row["doc"]["id"], row["resps"][0]) for row in map(json.loads, samples.open()))


@pytest.mark.slow
def test_accelerate_launch_two_ranks_gives_the_single_process_samples(tmp_path, tiny_model):
    common = [
        "--model", "hf-noisy",
        "--model_args", f"pretrained={tiny_model},dtype=float32,noise=embedding,noise_scale=0.05",
        "--include_path", str(tasks_dir()), "--tasks", "noise_demo", "--limit", "4", "--batch_size", "2",
        "--gen_kwargs", "max_gen_toks=8", "--log_samples",
    ]
    launch = [str(Path(sys.executable).with_name("accelerate")), "launch", "--cpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lm_eval"]
    for command, out in ((launch, tmp_path / "ranks"), ([sys.executable, "-m", "lm_eval", "--device", "cpu"], tmp_path / "one")):
        run = subprocess.run(command + common + ["--output_path", str(out)], capture_output=True, text=True,
                             env=ENV, timeout=900, cwd=ROOT)
        assert run.returncode == 0, run.stderr[-3000:]
    assert _responses(tmp_path / "ranks") == _responses(tmp_path / "one")
