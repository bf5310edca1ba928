"""The package as pip installs it: a wheel built from pyproject.toml, installed
outside the repository, its console programs and the quickstart example."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import helpers


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(folder the wheel was installed into, environment that sees only it and
    the dependencies, not the repository)."""
    root = tmp_path_factory.mktemp("package")
    source = root / "source"  # a copy: the build writes beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(helpers.REPO, name), source / name)
    shutil.copytree(os.path.join(helpers.REPO, "stacnas_tf"), source / "stacnas_tf",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(pip + ["wheel", str(source), "--no-deps", "--no-build-isolation",
                                  "-w", str(root / "dist")], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = os.listdir(root / "dist")
    target = root / "site"
    done = subprocess.run(pip + ["install", "--no-deps", "--target", str(target),
                                 str(root / "dist" / wheel)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BUILD_WORKING_DIRECTORY")}
    env.update(PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="3",
               PATH=f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return root, target, wheel, env


def test_the_wheel_holds_the_library_and_its_programs(installed):
    root, target, wheel, env = installed
    assert wheel.startswith("stacnas_tf-") and wheel.endswith("-py3-none-any.whl")
    assert (target / "stacnas_tf" / "api.py").exists()
    assert not (target / "tests").exists() and not (target / "tools").exists()
    code = "import stacnas_tf, os; print(stacnas_tf.__version__, os.path.dirname(stacnas_tf.__file__))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            cwd=str(root), timeout=120)
    version, where = result.stdout.split()
    assert where == str(target / "stacnas_tf")


def test_console_programs_run_from_the_installed_package(installed):
    root, target, _, env = installed
    for program in ("stacnas-search", "stacnas-train", "stacnas-evaluate", "stacnas-export",
                    "stacnas-genotype", "stacnas-describe", "stacnas-visualize",
                    "stacnas-correlate", "stacnas-confusion", "stacnas-report"):
        assert (target / "bin" / program).exists(), program
    result = subprocess.run([sys.executable, str(target / "bin" / "stacnas-describe"),
                             "--genotype=DARTS_V2", "--preset=cifar10"], capture_output=True,
                            text=True, env=env, cwd=str(root), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"parameters": 3349342' in result.stdout
    bad = subprocess.run([sys.executable, str(target / "bin" / "stacnas-search"), "--channels=3"],
                         capture_output=True, text=True, env=env, cwd=str(root), timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "stacnas-search: error: --channels: expected an even number >= 2, got 3."]


def _run_example(installed, name):
    """(its working folder, the run) of examples/`name` copied to a folder
    outside the repository and run with the installed wheel, smoke preset."""
    root, _, _, env = installed
    work = root / name.removesuffix(".py")
    work.mkdir()
    script = shutil.copy(os.path.join(helpers.REPO, "examples", name), work / name)
    result = subprocess.run([sys.executable, str(script), "smoke"], capture_output=True, text=True,
                            env=env, cwd=str(work), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, result


def test_quickstart_example_runs_outside_the_repository(installed):
    work, result = _run_example(installed, "quickstart.py")
    lines = result.stdout.splitlines()
    assert any(line.startswith("found: Genotype(normal=[") for line in lines)
    assert "epoch 1: loss" in result.stdout  # the user's callback
    assert "━" in result.stdout  # Keras's progress bar
    assert any(line.startswith("first predictions:") for line in lines)
    assert (work / "digits_export" / "export_report.json").exists()
    assert any(line.startswith("exported: ['onnx', 'saved_model', 'tflite_dynamic_range'")
               for line in lines)


def test_custom_op_example_runs_outside_the_repository(installed):
    # A user's own op (squeeze-and-excite), registered, searched, trained and exported.
    work, result = _run_example(installed, "custom_op.py")
    assert "export matches the Keras model: True" in result.stdout
    report = json.loads((work / "se_export" / "export_report.json").read_text())
    assert report["passed"] and len(report["formats"]) == 6
    for name in ("saved_model", "onnx", "tflite_float32"):
        assert report["formats"][name]["max_abs_logit_diff"] < 1e-4
    metadata = json.loads((work / "se_export" / "metadata.json").read_text())
    assert metadata["class_names"] == [str(d) for d in range(10)]
    assert metadata["preprocessing"]["inside_model"]
