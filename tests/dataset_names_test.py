"""The dataset names `--dataset` takes, checked without TensorFlow."""

import sys

import pytest

from stacnas_tf import dataset_names

import helpers


def test_folder_paths_are_recorded_absolute_and_other_names_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_names.canonical_name("folder:pets") == f"folder:{tmp_path / 'pets'}"
    assert dataset_names.canonical_name("folder:/data/pets") == "folder:/data/pets"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dataset_names.canonical_name("folder:~/pets") == f"folder:{tmp_path / 'home' / 'pets'}"
    for name in ("cifar10", "folder:", "fashion_mnist", 7):
        assert dataset_names.canonical_name(name) == name


def test_known_names_pass_and_others_are_refused_naming_the_flag():
    for name in ("cifar10", "cifar100", "imagenet2012", "fashion_mnist", "digits", "in_memory",
                 "folder:x"):
        dataset_names.check_dataset_name(name)
    for name in ("folder:", "mnist", "folder", "Cifar10", ""):
        with pytest.raises(ValueError, match=f"^--dataset: unknown dataset {name!r}; expected "
                                             "one of \\['cifar10', "):
            dataset_names.check_dataset_name(name)
    with pytest.raises(ValueError, match="^dataset: unknown dataset 'x'"):
        dataset_names.check_dataset_name("x", flag="dataset")


def test_the_names_and_the_configs_need_no_tensorflow():
    # What every program's --help and config parsing import.
    import subprocess

    code = ("import sys; import stacnas_tf.dataset_names, stacnas_tf.config; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=helpers.program_env(), timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]
