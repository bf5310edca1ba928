"""The programs' configuration: a flag per config field, --config=FILE, the
settings printed at start (stacnas_tf/commands/config_flags.py)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from stacnas_tf import config as config_lib

import helpers


@pytest.mark.parametrize("program,config_class", [("search", "SearchConfig"),
                                                  ("train", "TrainConfig")])
def test_every_config_field_is_a_flag(program, config_class):
    result = helpers.run_program(program, "--helpfull")
    flags = set()
    for line in result.stdout.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            flags.add(stripped[2:].split(":")[0].split("=")[0].removeprefix("[no]"))
    fields = {f.name for f in dataclasses.fields(getattr(config_lib, config_class))}
    # groups and genotype are read from files (--groups, --genotype); class_names from the data.
    missing = fields - flags - {"groups", "class_names"}
    assert not missing, missing
    assert {"config", "preset", "output_dir"} <= flags


PROGRAMS = ("search", "train", "evaluate", "export", "genotype", "describe", "visualize",
            "correlate", "confusion", "report")


def test_help_prints_each_programs_own_flags_and_exits_0(tmp_path):
    # Without TensorFlow or Keras: modules of those names that refuse to load come
    # first on the path, so help that imported either would fail.
    for name in ("tensorflow", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} loaded for --help')")
    env = helpers.program_env(PYTHONPATH=os.pathsep.join([str(tmp_path), helpers.REPO]))
    running = {program: subprocess.Popen(
        [sys.executable, os.path.join(helpers.REPO, "tools", f"{program}.py"), "--help"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for program in PROGRAMS}
    for program, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, (program, err[-1000:])
        assert out.startswith(f"usage: {program}.py"), program
        # Its own flags with their help, and nothing of absl.testing's.
        assert "stacnas_tf.commands" in out, program
        assert "  --" in out and "test_srcdir" not in out and "test_tmpdir" not in out, program


def test_help_lists_the_search_fields_with_their_help():
    result = helpers.run_program("search", "--help")
    assert result.returncode == 0
    words = " ".join(result.stdout.split())  # help texts wrap at 80 columns
    assert "--arch_warmup_epochs: Epochs at the start of each stage before alpha moves" in words
    assert "--output_dir:" in result.stdout and "--preset:" in result.stdout
    assert "test_srcdir" not in helpers.run_program("search", "--helpfull").stdout


def test_config_file_reproduces_a_search_and_flags_override_it(tmp_path):
    first = helpers.run_program("search", "--preset=smoke", f"--output_dir={tmp_path / 'a'}",
                                "--seed=3", "--arch_lr=0.001")
    assert first.returncode == 0, first.stderr[-2000:]
    # The resolved settings come first.
    assert "search settings:\n" in first.stdout and "  arch_lr=0.001" in first.stdout
    assert f"written to {tmp_path / 'a' / 'genotype.json'}\n" in first.stdout
    config = tmp_path / "a" / "config.json"
    again = helpers.run_program("search", f"--config={config}", f"--output_dir={tmp_path / 'b'}")
    assert again.returncode == 0, again.stderr[-2000:]
    saved = json.loads(config.read_text())
    assert json.loads((tmp_path / "b" / "config.json").read_text()) == saved
    assert ((tmp_path / "b" / "genotype.json").read_text()
            == (tmp_path / "a" / "genotype.json").read_text())
    # A flag overrides the file; --preset alongside --config is refused.
    changed = helpers.run_program("search", f"--config={config}",
                                  f"--output_dir={tmp_path / 'a'}", "--seed=4")
    assert changed.returncode == 2 and "seed=3 there, 4 now" in changed.stderr
    both = helpers.run_program("search", f"--config={config}", "--preset=smoke",
                               f"--output_dir={tmp_path / 'c'}")
    assert both.returncode == 2
    assert both.stderr.strip().splitlines() == [
        "search.py: error: --config and --preset both give the settings to start from; pass one."]


@pytest.mark.parametrize("content,message", [
    ("{not json", "--config: .* is not valid JSON .*; expected a run's config.json"),
    ("[1, 2]", "--config: .* holds no settings \\(a JSON object\\)"),
    ('{"stage1_cells": 3, "epochs": 2}', "--config: .*not a search's settings: unknown fields \\['epochs'\\]"),
    # The file's key, not a flag the user never passed.
    ('{"stage1_cells": 0}', '--config: .*config.json: "stage1_cells": expected a positive integer'),
    ('{"arch_lr": "0.1"}', '--config: .*config.json: "arch_lr": expected a number, got \'0.1\''),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, content, message):
    import re

    path = tmp_path / "config.json"
    path.write_text(content)
    result = helpers.run_program("search", f"--config={path}", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not (tmp_path / "out").exists()


def test_none_clears_a_presets_optional_setting(tmp_path):
    # The smoke preset trains on 128 examples at the dataset's own size; a folder of 10
    # non-square images needs --num_train_examples=none (all), as the refusal says.
    import numpy as np

    rng = np.random.RandomState(0)
    for split, count in (("train", 5), ("test", 2)):
        for name in ("a", "b"):
            for index in range(count):
                helpers.write_png(tmp_path / "images" / split / name / f"{index}.png",
                                  rng.randint(0, 256, (8, 12, 3)))
    flags = ["--preset=smoke", "--genotype=DARTS_V2", f"--dataset=folder:{tmp_path / 'images'}",
             "--batch_size=4"]
    refused = helpers.run_program("train", *flags, f"--output_dir={tmp_path / 'refused'}")
    assert refused.returncode == 2
    assert ("--num_train_examples=128: " in refused.stderr
            and "has 10 training examples; pass at most that many, or none for all" in refused.stderr)
    result = helpers.run_program("train", *flags, "--num_train_examples=none",
                                 "--num_eval_examples=NONE", "--image_size=None",
                                 f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "  num_train_examples=null\n" in result.stdout
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (saved["num_train_examples"], saved["num_eval_examples"], saved["image_size"]) == (
        None, None, None)
    assert "on 4 test images" in result.stdout
    # Any other word is still refused by the flag's own type.
    bad = helpers.run_program("train", *flags, "--num_train_examples=all",
                              f"--output_dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "train.py: error: flag --num_train_examples=all: expected an integer or none, got 'all'")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "refused").exists()
