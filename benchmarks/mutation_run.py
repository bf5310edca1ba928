"""A mutation run by hand: deliberate one-line bugs in the method's core, one at
a time, each against the tests that should catch it.

  PYTHONPATH=. .venv/bin/python benchmarks/mutation_run.py \
      --output=benchmarks/results/mutation_run.json [--only=NAME,...]

Every mutant is a (file, original text, mutated text) replacement applied to a
copy of the checkout in a scratch folder (the working tree is never touched);
the named tests then run there with pytest. A mutant is killed when the tests
fail; one whose original text is no longer found is reported as stale (the
table needs updating, not the code). The score and the survivors go into
docs/testing.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/mutation_run.json", "JSON results.")
_ONLY = flags.DEFINE_list("only", [], "Run only these mutants (by name).")
_TIMEOUT = flags.DEFINE_integer("timeout", 900, "Seconds per mutant's test run.")


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]  # pytest node ids or files, relative to the checkout


MUTANTS = (
    # --- search: which group stage 2 searches, and the derivation -------------
    Mutant("activates_weakest_stage1_op", "stacnas_tf/search_loop.py",
           "genotype_lib.strongest_ops(cell, weights)",
           "genotype_lib.strongest_ops(cell, [[-x for x in w] for w in weights])",
           ("tests/search_loop_test.py::test_end_to_end_outputs",)),
    Mutant("stage2_ranking_ignores_group_size", "stacnas_tf/genotype.py",
           "missing = width - len(candidates)", "missing = 0",
           ("tests/genotype_test.py",)),
    Mutant("derivation_keeps_weakest_edges", "stacnas_tf/genotype.py",
           "key=lambda item: -item[0][0])[:2]", "key=lambda item: item[0][0])[:2]",
           ("tests/genotype_test.py",)),
    # --- one-level optimization ------------------------------------------------
    Mutant("no_weight_decay_on_weights", "stacnas_tf/one_level.py",
           "return [g * scale + decay * v for g, v in zip(grads, weight_vars)], raw_norm",
           "return [g * scale for g, v in zip(grads, weight_vars)], raw_norm",
           ("tests/search_loop_test.py::test_search_steps_follow_darts_optimizers_and_decays",
            "tests/training_test.py::test_final_network_step_adds_decay_and_weighted_auxiliary_loss")),
    Mutant("architecture_decay_at_weights_value", "stacnas_tf/search_loop.py",
           "architecture_weight_decay=config.arch_weight_decay",
           "architecture_weight_decay=config.weight_decay",
           ("tests/search_loop_test.py::test_search_steps_follow_darts_optimizers_and_decays",)),
    Mutant("adam_beta_1_0.9", "stacnas_tf/config.py",
           "arch_beta_1: float = 0.5", "arch_beta_1: float = 0.9",
           ("tests/search_loop_test.py::test_search_steps_follow_darts_optimizers_and_decays",)),
    Mutant("alpha_updated_every_other_step", "stacnas_tf/supernet.py",
           "        one_level.apply(self.optimizer, weight_grads, self.weight_variables,\n"
           "                        self.architecture_optimizer, arch_grads, self.architecture_variables)\n"
           "        return self._step_logs(images, labels, logits, loss)",
           "        one_level.apply(self.optimizer, weight_grads, self.weight_variables)\n"
           "        def _alpha():\n"
           "            one_level.apply(self.architecture_optimizer, arch_grads, self.architecture_variables)\n"
           "            return tf.constant(0)\n"
           "        tf.cond(self.optimizer.iterations % 2 == 1, _alpha, lambda: tf.constant(0))\n"
           "        return self._step_logs(images, labels, logits, loss)",
           ("tests/search_loop_test.py::test_search_steps_follow_darts_optimizers_and_decays",)),
    Mutant("weights_unclipped", "stacnas_tf/one_level.py",
           "if tf.is_tensor(grad_clip_norm) or grad_clip_norm:", "if False:",
           ("tests/supernet_test.py::test_clipping_applies_to_weights_only",
            "tests/search_loop_test.py::test_search_steps_follow_darts_optimizers_and_decays")),
    Mutant("logit_sets_share_one_draw", "stacnas_tf/supernet.py",
           "seed=None if seed is None else seed * 1009 + index", "seed=seed",
           ("tests/supernet_test.py::test_every_logit_set_starts_from_its_own_draw",)),
    # --- final network and training ----------------------------------------------
    Mutant("auxiliary_loss_times_zero", "stacnas_tf/network.py",
           "loss += self.aux_weight * self.loss(labels, aux_logits)",
           "loss += 0.0 * self.loss(labels, aux_logits)",
           ("tests/training_test.py::test_final_network_step_adds_decay_and_weighted_auxiliary_loss",)),
    Mutant("final_training_without_weight_decay", "stacnas_tf/training.py",
           "weight_decay=config.weight_decay, architecture_weight_decay",
           "weight_decay=0.0, architecture_weight_decay",
           ("tests/training_test.py::test_final_network_step_adds_decay_and_weighted_auxiliary_loss",)),
    Mutant("training_ignores_lr_min", "stacnas_tf/training.py",
           "alpha=config.lr_min / config.lr)", "alpha=0.0)",
           ("tests/training_test.py::test_learning_rate_schedules_end_where_the_recipe_says",)),
    Mutant("deformable_resume_with_fresh_adam", "stacnas_tf/training.py",
           '        trackables["architecture_optimizer"] = architecture_optimizer\n',
           "        pass\n",
           ("tests/training_test.py::test_deformable_training_moves_edge_scales",)),
    Mutant("keras_file_reload_without_sublayers", "stacnas_tf/network.py",
           "        for index, cell in enumerate(self.derived_cells):\n"
           "            cell.build((shape0, shape1))",
           "        for index, cell in enumerate(self.derived_cells):\n"
           "            pass",
           ("tests/network_test.py::test_keras_file_round_trip_restores_every_weight_and_the_compile_config",)),
    Mutant("multiply_adds_square_kernels_only", "stacnas_tf/sizes.py",
           "out_h * out_w * kernel_h * kernel_w * (channels // layer.groups)",
           "out_h * out_w * kernel_h * kernel_h * (channels // layer.groups)",
           ("tests/sizes_test.py",)),
    Mutant("multiply_adds_from_traced_shapes", "stacnas_tf/sizes.py",
           "self.counts.append((layer, tuple(inputs.shape)))",
           "self.counts.append((layer, (inputs.shape[0],) + tuple(s // 2 for s in inputs.shape[1:3])"
           " + (inputs.shape[3],) if getattr(layer, 'dilation_rate', (1, 1))[0] > 1 else tuple(inputs.shape)))",
           ("tests/sizes_test.py",)),
    # --- data ----------------------------------------------------------------------
    Mutant("cifar_without_random_crop", "stacnas_tf/augmentation.py",
           "return Augment(crop_padding=4, flip=True)", "return Augment(flip=True)",
           ("tests/training_test.py::test_each_training_preset_applies_its_recipes_augmentation",)),
    Mutant("crop_ignores_its_seed", "stacnas_tf/augmentation.py",
           "image = tf.image.stateless_random_crop(padded, shape, seed=seed)",
           "image = tf.image.stateless_random_crop(padded, shape, seed=[0, 0])",
           ("tests/augmentation_test.py",)),
    Mutant("imagenet_training_loses_its_augmentation", "stacnas_tf/training.py",
           "return dataclasses.replace(augmentation.default_augment(config.dataset),",
           "return dataclasses.replace(augmentation.Augment("
           "flip=augmentation.default_augment(config.dataset).flip),",
           ("tests/training_test.py::test_each_training_preset_applies_its_recipes_augmentation",)),
    Mutant("imagenet_eval_crops_the_full_square", "stacnas_tf/pipelines.py",
           "shorter = round(size * 256 / 224)", "shorter = size",
           ("tests/pipelines_test.py",)),
    Mutant("folder_examples_by_class", "stacnas_tf/folder_datasets.py",
           "keyed.sort(key=lambda item: (item[0], item[1]))",
           "keyed.sort(key=lambda item: (item[1], item[0]))",
           ("tests/folder_datasets_test.py",)),
    # --- ops -----------------------------------------------------------------------------
    Mutant("factorized_reduce_without_shift", "stacnas_tf/ops.py",
           "odd = self.conv_odd(x[:, 1::2, 1::2, :])", "odd = self.conv_odd(x[:, ::2, ::2, :])",
           ("tests/ops_test.py",)),
    Mutant("batched_factorized_reduce_without_shift", "stacnas_tf/batched_ops.py",
           "grids = tf.concat([x[:, ::2, ::2, :], x[:, 1::2, 1::2, :]], axis=-1)",
           "grids = tf.concat([x[:, ::2, ::2, :], x[:, ::2, ::2, :]], axis=-1)",
           ("tests/batched_ops_test.py",)),
    Mutant("both_factorized_reduces_without_shift", "stacnas_tf/ops.py",
           "odd = self.conv_odd(x[:, 1::2, 1::2, :])", "odd = self.conv_odd(x[:, ::2, ::2, :])",
           ("tests/ops_test.py", "tests/batched_ops_test.py")),
    Mutant("batchnorm_momentum_reversed", "stacnas_tf/ops.py",
           "exponential_avg_factor=1.0 - self.momentum", "exponential_avg_factor=self.momentum",
           ("tests/ops_test.py",)),
    Mutant("stride2_depthwise_padded_one_side", "stacnas_tf/ops.py",
           'return kernel_size // 2, stride, "valid", 1', 'return None, stride, "same", 1',
           ("tests/ops_test.py",)),
    # --- export and files ---------------------------------------------------------------------
    Mutant("export_verifies_keras_against_itself", "stacnas_tf/exporting.py",
           'artifacts["saved_model"] = (saved_model, saved_model_runner(saved_model))',
           'artifacts["saved_model"] = (saved_model, lambda b: serving.serve(tf.constant(b))["logits"].numpy())',
           ("tests/exporting_test.py::test_verification_catches_artifacts_of_another_network",)),
    Mutant("outputs_private_to_their_writer", "stacnas_tf/files.py",
           "        os.fchmod(fd, 0o666 & ~umask())\n", "",
           ("tests/files_test.py",)),
)

# The second half of `both_factorized_reduces_without_shift`, applied with the first.
_COMPANIONS = {
    "both_factorized_reduces_without_shift": (
        "stacnas_tf/batched_ops.py",
        "grids = tf.concat([x[:, ::2, ::2, :], x[:, 1::2, 1::2, :]], axis=-1)",
        "grids = tf.concat([x[:, ::2, ::2, :], x[:, ::2, ::2, :]], axis=-1)"),
}


def _replace(root, path, original, mutated):
    full = os.path.join(root, path)
    with open(full) as f:
        text = f.read()
    if text.count(original) != 1:
        return False
    with open(full, "w") as f:
        f.write(text.replace(original, mutated))
    return True


def _run(mutant: Mutant, checkout: str, timeout: int) -> dict:
    scratch = tempfile.mkdtemp(prefix=f"mutant-{mutant.name}-")
    try:
        for item in ("stacnas_tf", "tests", "tools", "benchmarks"):
            shutil.copytree(os.path.join(checkout, item), os.path.join(scratch, item),
                            ignore=shutil.ignore_patterns("__pycache__", "results"))
        applied = _replace(scratch, mutant.path, mutant.original, mutant.mutated)
        if applied and mutant.name in _COMPANIONS:
            applied = _replace(scratch, *_COMPANIONS[mutant.name])
        if not applied:
            return {"name": mutant.name, "outcome": "stale", "seconds": 0.0}
        start = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=scratch, TF_CPP_MIN_LOG_LEVEL="2")
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                 *mutant.tests], cwd=scratch, env=env, capture_output=True, text=True,
                timeout=timeout)
            outcome = "survived" if result.returncode == 0 else "killed"
            lines = result.stdout.strip().splitlines()
            # The summary, and the first failure: an assertion kills a mutant for the
            # right reason; an exception may only mean the mutant does not run.
            tail = lines[-1:] + [line for line in lines if line.startswith("E ")][:1]
        except subprocess.TimeoutExpired:
            outcome, tail = "timeout", []
        return {"name": mutant.name, "file": mutant.path, "tests": list(mutant.tests),
                "outcome": outcome, "pytest": tail,
                "seconds": round(time.perf_counter() - start, 1)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv):
    del argv
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    chosen = [m for m in MUTANTS if not _ONLY.value or m.name in _ONLY.value]
    results = []
    for mutant in chosen:
        result = _run(mutant, checkout, _TIMEOUT.value)
        results.append(result)
        print(f"{result['outcome']:>9}  {mutant.name}  ({result['seconds']} s)", flush=True)
    killed = sum(r["outcome"] == "killed" for r in results)
    counted = sum(r["outcome"] in ("killed", "survived", "timeout") for r in results)
    report = {"date": datetime.date.today().isoformat(), "mutants": len(results),
              "killed": killed, "score": f"{killed}/{counted}",
              "survivors": [r["name"] for r in results if r["outcome"] == "survived"],
              "stale": [r["name"] for r in results if r["outcome"] == "stale"],
              "results": results}
    output = os.path.join(checkout, _OUTPUT.value) if not os.path.isabs(_OUTPUT.value) else _OUTPUT.value
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(output + ".tmp", output)
    print(f"killed {report['score']}; survivors: {report['survivors'] or 'none'}")


if __name__ == "__main__":
    app.run(main)
