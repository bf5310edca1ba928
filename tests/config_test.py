"""The presets: the paper's exact, the embedded default's documented deviations."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import search_space  # noqa: E402

# The paper (section 3 and "all other settings identical to DARTS"; DARTS's
# train_search.py for the optimizers): 14 / 20 cells, 100 epochs per stage,
# batch 64, C=16, SGD lr 0.025 -> 0.001, momentum 0.9, L2 3e-4, clip 5; alpha's Adam
# lr 3e-4, betas (0.5, 0.999), L2 1e-3; no warm-up; every training image each epoch.
PAPER_SEARCH = dict(
    stage1_cells=14, stage2_cells=20, stage1_epochs=100, stage2_epochs=100, batch_size=64,
    channels=16, weight_lr=0.025, weight_lr_min=0.001, weight_momentum=0.9,
    weight_decay=3e-4, grad_clip_norm=5.0, arch_lr=3e-4, arch_beta_1=0.5, arch_beta_2=0.999,
    arch_weight_decay=1e-3, arch_warmup_epochs=0, steps_per_epoch=None,
    num_train_examples=None, image_size=None, optimization="one_level", grouping="grouped",
    num_nodes=4, per_cell_logits=False, groups=search_space.PAPER_GROUPS,
)


@pytest.mark.parametrize("name,dataset", [("paper_cifar10", "cifar10"),
                                          ("paper_cifar100", "cifar100")])
def test_paper_presets_are_the_papers_settings(name, dataset):
    preset = config_lib.PRESETS[name]
    assert preset.dataset == dataset
    assert {field: getattr(preset, field) for field in PAPER_SEARCH} == PAPER_SEARCH


def test_default_preset_searches_fresh_images_with_a_scaled_alpha_rate():
    default = config_lib.PRESETS["default"]
    # Every image of Fashion-MNIST is available; a stage takes fewer steps than a pass,
    # so no image is seen twice in a stage.
    assert default.num_train_examples is None
    assert default.dataset == "fashion_mnist"
    steps = default.steps_per_epoch * default.stage1_epochs
    assert steps * default.batch_size <= 60_000
    assert default.stage2_epochs == default.stage1_epochs
    # alpha's rate times its steps matches the paper's (3e-4 over 100 epochs of the
    # 781 CIFAR-10 batches) to within a factor of 1.5.
    paper_travel = 3e-4 * 100 * (50_000 // 64)
    assert 1 / 1.5 < default.arch_lr * steps / paper_travel < 1.5
    assert 0 < default.arch_warmup_epochs < default.stage1_epochs // 2


def test_new_fields_are_checked():
    base = config_lib.PRESETS["smoke"]
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="--steps_per_epoch"):
            base.replace(steps_per_epoch=bad)
    for bad in (-1, 0.5, False + 0.5):
        with pytest.raises(ValueError, match="--arch_warmup_epochs"):
            base.replace(arch_warmup_epochs=bad)
    # A warm-up as long as a stage would leave alpha where it started.
    with pytest.raises(ValueError, match="leaves no epoch in which alpha moves"):
        base.replace(stage1_epochs=3, stage2_epochs=2, arch_warmup_epochs=2)
    with pytest.raises(ValueError, match="leaves no epoch"):
        base.replace(grouping="flat", stage1_epochs=2, stage2_epochs=9, arch_warmup_epochs=2)
    assert base.replace(grouping="flat", stage1_epochs=3, stage2_epochs=1,
                        arch_warmup_epochs=2).arch_warmup_epochs == 2
    assert base.replace(steps_per_epoch=7).steps_per_epoch == 7
