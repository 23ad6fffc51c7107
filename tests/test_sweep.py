"""The sweep runner: one model load, lm-eval-format atomic output, resume after SIGKILL, config errors."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lm_eval_noise.leaderboard.method import method_label
from lm_eval_noise.results.files import find_results_files
from lm_eval_noise.model import HFNoisyLM
from lm_eval_noise.sweep import SweepConfigError, main, parse_config, run_sweep
from lm_eval_noise.sweep.writer import clean_leftovers

TASKS = ["noise_demo", "noise_demo_sampled"]
METHODS = [
    {"name": "greedy"},
    {"name": "temp-0.8", "gen_kwargs": {"do_sample": True, "temperature": 0.8}},
    {"name": "embed-0.05", "noise": {"noise": "embedding", "noise_scale": 0.05}},
]


def _config(**overrides) -> dict:
    config = {
        "model": "hf-noisy",
        "model_args": {"pretrained": "${TINY_MODEL}", "device": "cpu", "dtype": "float32"},
        "tasks": TASKS,
        "include_defaults": False,
        "limit": 2,
        "batch_size": 2,
        "gen_kwargs": {"max_gen_toks": 6},
        "methods": METHODS,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def tiny_env(tiny_model):
    env = {**os.environ, "TINY_MODEL": tiny_model, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    old = os.environ.get("TINY_MODEL")
    os.environ["TINY_MODEL"] = tiny_model
    yield env
    if old is None:
        os.environ.pop("TINY_MODEL", None)
    else:
        os.environ["TINY_MODEL"] = old


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, tiny_env) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny_sweep.yaml"
    path.write_text(yaml.safe_dump(_config()))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_env):
    """An uninterrupted in-process sweep, counting model constructions."""
    out = tmp_path_factory.mktemp("reference")
    loads = []
    original = HFNoisyLM.__init__

    def counting_init(self, *args, **kwargs):
        loads.append(kwargs.get("pretrained"))
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HFNoisyLM, "__init__", counting_init)
        log = io.StringIO()
        summary = run_sweep(parse_config(_config(), "tiny_sweep", out), out=log)
    return out, summary, loads, log.getvalue()


def _sweep_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lm_eval_noise", "sweep", str(config), "--output-dir", str(out), *extra]


# Runs a sweep that pauses right after the Nth file of its output lands in place (os.replace out of a
# temp folder), after writing a marker file: the test then signals it at exactly that point, with no race.
_PAUSING_SWEEP = """
import os, sys, time
from pathlib import Path
marker, at, hold = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
real_replace, placed = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    if ".sweep-tmp-" in str(src):
        placed[0] += 1
        if placed[0] == at:
            marker.write_text(str(dst))
            time.sleep(hold)
os.replace = replace
from lm_eval_noise.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _paused_sweep(config: Path, out: Path, marker: Path, at: int, hold: float, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _PAUSING_SWEEP, str(marker), str(at), str(hold), "sweep", str(config), "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before placing file {at}")
        time.sleep(0.02)
    return proc


def _results_files(root: Path) -> list[Path]:
    """Finished results files; never descends into a sweep's temp folders, which a running sweep
    renames or removes at any moment (os.walk also skips a folder that vanished mid-walk)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / f for f in files if f.startswith("results_") and f.endswith(".json")]
    return sorted(found)


def _by_evaluation(root: Path) -> dict[tuple[str, str], tuple[dict, list[dict]]]:
    """{(method, task): (results["results"][task], [sample records sorted by doc_id])}."""
    out = {}
    for path in _results_files(root):
        data = json.loads(path.read_text())
        sweep = data["config"]["sweep"]
        date_id = path.stem.removeprefix("results_")
        lines = (path.parent / f"samples_{sweep['task']}_{date_id}.jsonl").read_text().splitlines()
        samples = sorted(
            ({k: s[k] for k in ("doc_id", "arguments", "resps", "filtered_resps")} for s in map(json.loads, lines)),
            key=lambda s: s["doc_id"],
        )
        out[(sweep["method"], sweep["task"])] = (data["results"][sweep["task"]], samples)
    return out


def test_one_model_load_and_lm_eval_format(reference):
    out, summary, loads, log = reference
    assert len(loads) == 1 and summary.model_loads == 1
    assert len(summary.ran) == 6 and not summary.skipped
    assert log.count(" ran ") == 6
    files = find_results_files(out)  # the leaderboard's reader finds every evaluation
    assert sorted(method_label(f.data) for f in files) == sorted([m["name"] for m in METHODS] * 2)
    for f in files:
        data = f.data
        for key in ("results", "configs", "config", "versions", "n-samples", "task_hashes", "model_name"):
            assert key in data
        assert data["config"]["model"] == "hf-noisy"
        assert data["config"]["sweep"]["seed"] == 0 and data["config"]["noise"]["noise_seed"] == 0
        assert f.path.parent == out / data["config"]["method"] / "seed-0"
        samples = f.samples_path(f.tasks[0])
        assert samples is not None and len(samples.read_text().splitlines()) == 2
    by_eval = _by_evaluation(out)
    greedy = by_eval[("greedy", "noise_demo")][1]
    noisy = by_eval[("embed-0.05", "noise_demo")][1]
    assert all(len(set(s["resps"][0])) == 1 for s in greedy)  # greedy repeats agree ...
    assert any(len(set(s["resps"][0])) > 1 for s in noisy)  # ... noise makes them differ
    assert greedy != by_eval[("temp-0.8", "noise_demo")][1]


def test_sigkill_then_resume_matches_uninterrupted(reference, config_file, tiny_env, tmp_path):
    ref_dir = reference[0]
    out = tmp_path / "killed"
    # Killed between the two files of the second evaluation: its samples file is in place, its results not.
    proc = _paused_sweep(config_file, out, tmp_path / "paused", at=3, hold=600, env=tiny_env)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _results_files(out)}
    assert len(finished) == 1
    assert len(list(out.rglob("samples_*.jsonl"))) == 2  # the first evaluation's, and the second's orphan
    for path in _results_files(out):
        json.loads(path.read_text())

    rerun = subprocess.run(_sweep_cmd(config_file, out), env=tiny_env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.count(" skip ") == len(finished)
    assert rerun.stdout.count(" ran ") == 6 - len(finished)
    assert "1 model load(s)" in rerun.stdout
    for path, stamp in finished.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{path} was rewritten"
        assert str(path) in rerun.stdout
    assert _by_evaluation(out) == _by_evaluation(ref_dir)
    assert not list(out.rglob(".sweep-tmp-*"))
    assert len(list(out.rglob("samples_*.jsonl"))) == 6  # no orphan from the killed write

    again = subprocess.run(_sweep_cmd(config_file, out), env=tiny_env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count(" skip ") == 6 and "0 model load(s)" in again.stdout


def test_dry_run_and_changed_settings(reference, tiny_env, tmp_path):
    ref_dir = reference[0]
    log = io.StringIO()
    run_sweep(parse_config(_config(), "tiny_sweep", ref_dir), dry_run=True, out=log)
    assert log.getvalue().count(" skip ") == 6 and "0 to run, 6 done" in log.getvalue()
    log = io.StringIO()
    run_sweep(parse_config(_config(seeds=[0, 3]), "tiny_sweep", ref_dir), dry_run=True, out=log)
    assert log.getvalue().count(" skip ") == 6 and log.getvalue().count(" run ") == 6
    assert "embed-0.05 seed=3 noise_demo_sampled" in log.getvalue()
    with pytest.raises(SweepConfigError, match="other settings"):
        run_sweep(parse_config(_config(limit=3), "tiny_sweep", ref_dir), dry_run=True, out=io.StringIO())
    assert not (tmp_path / "fresh").exists()
    log = io.StringIO()
    run_sweep(parse_config(_config(), "tiny_sweep", tmp_path / "fresh"), dry_run=True, out=log)
    assert log.getvalue().count(" run ") == 6 and not (tmp_path / "fresh").exists()


def test_clean_leftovers_keeps_complete_pairs(tmp_path):
    (tmp_path / "results_2025-01-01T00-00-00.1.json").write_text("{}")
    (tmp_path / "samples_t_2025-01-01T00-00-00.1.jsonl").write_text("")
    (tmp_path / "samples_t_2025-01-01T00-00-09.9.jsonl").write_text("")
    (tmp_path / ".sweep-tmp-abc").mkdir()
    removed = clean_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [".sweep-tmp-abc", "samples_t_2025-01-01T00-00-09.9.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "results_2025-01-01T00-00-00.1.json", "samples_t_2025-01-01T00-00-00.1.jsonl",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methodz": []}, r"unknown key\(s\) 'methodz' \(did you mean 'methods'\?\)"),
        ({"methods": [{"name": "a"}, {"name": "a"}]}, "duplicate method name"),
        ({"methods": [{"name": "a", "noise": {"noise": "embedding", "noise_scale": -1}}]}, r"methods\[0\] \(a\)\.noise: noise_scale"),
        ({"methods": [{"name": "a", "noise": {"noise": "gaussian"}}]}, "valid values: embedding"),
        ({"methods": [{"name": "a", "noise": {"sigma": 0.1}}]}, "unknown noise argument"),
        ({"methods": [{"name": "a", "noise": {"noise_seed": 3}}]}, "top-level `seeds`"),
        ({"methods": [{"name": "a", "temperature": 0.8}]}, r"methods\[0\]: unknown key"),
        ({"methods": [{"name": "../up"}]}, "folder-safe"),
        ({"methods": []}, "non-empty list"),
        ({"model_args": "pretrained=x,noise=embedding"}, "must not hold noise arguments"),
        ({"model_args": {"device": "cpu"}}, "needs pretrained"),
        ({"seeds": [0, 0]}, "lists a seed twice"),
        ({"seeds": [-1]}, "integer >= 0"),
        ({"limit": 0}, "limit=0"),
        ({"batch_size": "big"}, "batch_size='big'"),
        ({"tasks": []}, "non-empty list of task names"),
        ({"model_args": {"pretrained": "${NO_SUCH_SWEEP_VAR}"}}, r"model_args\.pretrained: environment variable"),
        ({"model_args": {"pretrained": "/no/such/model"}}, "pretrained='/no/such/model': no such local folder"),
        ({"model_args": {"pretrained": "./models/none"}}, "no such local folder"),
        ({"gen_kwargs": {"temprature": 0.8}}, r"gen_kwargs: unknown generation argument\(s\) 'temprature' "
                                              r"\(did you mean 'temperature'\?\)"),
        ({"methods": [{"name": "t", "gen_kwargs": {"do_sample": True, "top_pp": 0.9}}]},
         r"methods\[0\] \(t\)\.gen_kwargs: unknown generation argument\(s\) 'top_pp' \(did you mean 'top_p'\?\)"),
    ],
)
def test_bad_config_rejected(overrides, message, monkeypatch):
    monkeypatch.setenv("TINY_MODEL", "/nowhere")
    with pytest.raises(SweepConfigError, match=message):
        parse_config(_config(**overrides), "bad")


def test_hub_ids_and_existing_folders_pass_the_path_check(tiny_env):
    parse_config(_config(model_args={"pretrained": "org/model"}), "hub")  # resolved by transformers later
    parse_config(_config(model_args={"pretrained": "gpt2"}), "hub")
    parse_config(_config(), "local")  # ${TINY_MODEL}, an existing folder


def test_dry_run_catches_what_would_fail_after_loading(tiny_env, tmp_path, capsys):
    """A misspelt generation kwarg and a missing local model fail the dry run, before any load."""
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(_config(methods=[{"name": "t", "gen_kwargs": {"temprature": 0.8}}])))
    assert main([str(path), "--dry-run"]) == 2
    assert "did you mean 'temperature'" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(_config(model_args={"pretrained": str(tmp_path / "gone")})))
    assert main([str(path), "--dry-run"]) == 2
    assert "no such local folder" in capsys.readouterr().err


def test_unknown_task_and_model_rejected_before_loading(tiny_env, tmp_path, monkeypatch, capsys):
    def no_load(*args, **kwargs):
        raise AssertionError("the model must not load for an invalid config")

    monkeypatch.setattr(HFNoisyLM, "__init__", no_load)
    with pytest.raises(SweepConfigError, match=r"unknown task\(s\) 'noise_dem' \(did you mean 'noise_demo'\?\)"):
        run_sweep(parse_config(_config(tasks=["noise_demo", "noise_dem"]), "bad", tmp_path), out=io.StringIO())
    with pytest.raises(SweepConfigError, match="model='hf-nosy' is not a registered"):
        run_sweep(parse_config(_config(model="hf-nosy"), "bad", tmp_path), out=io.StringIO())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_config(methods=[{"name": "x", "noise": {"noise": "embedding", "noise_scale": "big"}}])))
    assert main([str(path)]) == 2
    assert "noise_scale='big' is not a number" in capsys.readouterr().err
    assert not list(tmp_path.rglob("results_*.json"))


def test_sigterm_waits_for_the_evaluation_in_place(config_file, tiny_env, tmp_path):
    out = tmp_path / "terminated"
    # SIGTERM arrives between the two files of the second evaluation: the sweep finishes placing it, then exits.
    proc = _paused_sweep(config_file, out, tmp_path / "paused", at=3, hold=2, env=tiny_env)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    results = _results_files(out)
    assert len(results) == 2  # the second evaluation completed, the third never started
    for path in results:
        json.loads(path.read_text())
    assert len(list(out.rglob("samples_*.jsonl"))) == 2
    assert not list(out.rglob(".sweep-tmp-*"))


def test_no_git_noise_outside_a_checkout(tiny_env, tmp_path, monkeypatch, capfd):
    """lm-eval asks git for a commit per evaluation; outside a checkout git must not print 'fatal' each time."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISABLE_MULTIPROC", raising=False)
    config = _config(tasks=["noise_demo"], methods=METHODS[:1], seeds=[0, 1], limit=1)
    run_sweep(parse_config(config, "nogit", tmp_path / "out"), out=io.StringIO())
    assert "DISABLE_MULTIPROC" not in os.environ  # the sweep's in-process bootstrap setting is its own
    err = capfd.readouterr().err
    assert "not a git repository" not in err
    files = find_results_files(tmp_path / "out")
    assert len(files) == 2 and all(f.data.get("git_hash") is None for f in files)
