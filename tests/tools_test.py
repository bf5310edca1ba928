"""The binaries, run as a user runs them (Bazel-built py_binary targets)."""

import json
import os
import subprocess
import sys

import pytest

import helpers

RUNFILES = os.environ.get("TEST_SRCDIR")
WORKSPACE = os.environ.get("TEST_WORKSPACE", "stacnas_tf")


def _tool(name):
    if RUNFILES:
        return [os.path.join(RUNFILES, WORKSPACE, "tools", name)]
    return [sys.executable, os.path.join(helpers.REPO, "tools", f"{name}.py")]


def _run(name, *flags):
    return subprocess.run(_tool(name) + list(flags), capture_output=True, text=True,
                          env=helpers.program_env(), timeout=600)


def test_search_smoke_preset_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = _run("search", "--preset=smoke", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    genotype = json.loads((out / "genotype.json").read_text())
    assert genotype["format"] == "stacnas_tf.genotype" and len(genotype["normal"]) == 8
    assert "genotype: Genotype(normal=[" in result.stdout
    # Rerunning the finished search changes nothing.
    before = (out / "genotype.json").read_text()
    again = _run("search", "--preset=smoke", f"--output_dir={out}")
    assert again.returncode == 0 and (out / "genotype.json").read_text() == before


@pytest.mark.parametrize("flag,message", [
    ("--stage1_cells=0", "--stage1_cells: expected a positive integer"),
    ("--stage2_epochs=-2", "--stage2_epochs: expected a positive integer"),
    ("--dataset=svhn", "--dataset: unknown dataset 'svhn'"),
    ("--groups=/nonexistent/groups.json", "--groups: file /nonexistent/groups.json does not exist"),
    ("--data_dir=/nonexistent", "--data_dir: folder /nonexistent does not exist"),
    ("--strategy=multi_worker", "--strategy=multi_worker: set TF_CONFIG on every worker"),
    ("--cpu_replicas=3", "--batch_size=32 does not split evenly over 3 replicas"),
    ("--precision=float64", "--precision"),
    ("--seed=-1", "--seed: expected an integer in [0, 2^31), got -1"),
    ("--stage1_cells=1", "--stage1_cells: a supernet of 1 cell(s) has no normal cell"),
])
def test_search_refuses_bad_flags_before_any_work(tmp_path, flag, message):
    result = _run("search", "--preset=smoke", f"--output_dir={tmp_path / 'run'}", flag)
    assert result.returncode != 0
    assert message in result.stderr
    # One line that names the flag, not the binary's whole help text.
    assert message in "\n".join(result.stderr.strip().splitlines()[-2:])
    assert "Flags left unset" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_genotype_tool_writes_picture_ready_files(tmp_path):
    result = _run("genotype", "--genotype=DARTS_V2", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    graph = json.loads((tmp_path / "genotype_graph.json").read_text())
    assert graph["reduce"]["edges"][0]["op"] == "max_pool_3x3"
    assert (tmp_path / "genotype.dot").read_text().startswith("digraph")
    bad = _run("genotype", "--genotype=NOPE")
    assert bad.returncode != 0 and "neither a published genotype" in bad.stderr


def test_train_evaluate_and_describe_binaries(tmp_path):
    out = tmp_path / "train"
    result = _run("train", "--preset=smoke", "--genotype=DARTS_V2", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "top-1" in result.stdout and metrics["epochs"] == 1
    evaluated = _run("evaluate", f"--train_dir={out}", "--num_examples=64")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout)["examples"] == 64
    described = _run("describe", "--genotype=DARTS_V1", "--preset=cifar10")
    assert described.returncode == 0, described.stderr[-3000:]
    assert json.loads(described.stdout)["parameters"] == 3_169_414


def test_search_scales_batch_and_learning_rate_and_runs_mixed_precision(tmp_path):
    out = tmp_path / "run"
    result = _run("search", "--preset=smoke", f"--output_dir={out}", "--cpu_replicas=2",
                  "--scaling_rule=linear", "--precision=mixed_bfloat16",
                  "--num_train_examples=128")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert (config["batch_size"], config["precision"]) == (64, "mixed_bfloat16")
    assert config["weight_lr"] == pytest.approx(2 * 0.025)
    assert "2 replica(s), mixed_bfloat16" in result.stdout
    assert json.loads((out / "genotype.json").read_text())["format"] == "stacnas_tf.genotype"


@pytest.mark.parametrize("flags,message", [
    (["--strategy=multi_worker"], "--strategy=multi_worker: set TF_CONFIG"),
    (["--genotype=NOPE"], "--genotype: 'NOPE' is neither a published genotype"),
    (["--epochs=0"], "--epochs: expected a positive integer"),
    (["--genotype=Genotype(normal=[('sep_conv_3x3', 9)] * 8)"], "--genotype"),
])
def test_train_refuses_bad_flags(tmp_path, flags, message):
    result = _run("train", "--preset=smoke", f"--output_dir={tmp_path / 'run'}", *flags)
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "run").exists()


def test_export_binary(tmp_path):
    train_dir = tmp_path / "train"
    trained = _run("train", "--preset=smoke", "--genotype=DARTS_V2", f"--output_dir={train_dir}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = tmp_path / "export"
    result = _run("export", f"--train_dir={train_dir}", f"--output_dir={out}", "--calibration_samples=16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "export_report.json").read_text())["passed"]
    again = _run("export", f"--train_dir={train_dir}", f"--output_dir={out}")
    assert again.returncode != 0 and "--overwrite" in again.stderr
    wrong = _run("export", f"--train_dir={train_dir}", f"--output_dir={tmp_path / 'x'}", "--genotype=DARTS_V1")
    assert wrong.returncode != 0 and "another genotype" in wrong.stderr
    assert not (tmp_path / "x").exists()


def test_visualize_binary_draws_cells(tmp_path):
    result = _run("visualize", "--genotype=DARTS_V2", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "normal.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "reduce.svg").read_bytes()
    none = _run("visualize", f"--output_dir={tmp_path / 'none'}")
    assert none.returncode != 0 and "give --genotype, --search_dir" in none.stderr


@pytest.mark.parametrize("tool,flags,message", [
    ("correlate", ["--ops=sep_conv_3x3,conv_7x7"], "--ops: unknown op name(s) ['conv_7x7']"),
    ("correlate", ["--min_correlation=2"], "--min_correlation: expected a value in [-1, 1]"),
    ("correlate", ["--search_dir=/nonexistent"], "--search_dir: folder /nonexistent does not exist"),
    ("confusion", ["--stage1_depths=2,5"], "--stage1_depths: expected depths of at least 3 cells"),
    ("confusion", ["--stage2_depths=a"], "--stage2_depths: expected comma-separated cell counts"),
    ("search", ["--optimization=second_order"], "--optimization"),
])
def test_analysis_binaries_refuse_bad_flags_before_any_work(tmp_path, tool, flags, message):
    result = _run(tool, f"--output_dir={tmp_path / 'run'}", *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "run").exists()
