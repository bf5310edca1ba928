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


@pytest.mark.parametrize("key,value,expected", [
    ("lr", "0.05", '"lr": expected a number, got \'0.05\''),
    ("drop_path", None, '"drop_path": expected a number, got None'),
    ("cutout", True, '"cutout": expected an integer, got True'),
    ("autoaugment", "yes", '"autoaugment": expected true or false, got \'yes\''),
    ("image_size", "32", '"image_size": expected an integer \\(or none\\), got \'32\''),
    ("batch_size", 32.0, '"batch_size": expected an integer, got 32.0'),
])
def test_a_hand_edited_training_config_names_the_file_and_key(key, value, expected):
    # From a run's config.json: the key, not a flag the user never passed.
    saved = dict(config_lib.TrainConfig(genotype="DARTS_V2").to_dict(), **{key: value})
    with pytest.raises(ValueError, match=f"^--train_dir: t/config.json: {expected}.$"):
        config_lib.TrainConfig.from_dict(saved, source="--train_dir: t/config.json")


def test_wrong_kinds_are_refused_where_settings_are_made():
    with pytest.raises(ValueError, match="^--arch_lr: expected a number, got '0.1'.$"):
        config_lib.SearchConfig(arch_lr="0.1")
    with pytest.raises(ValueError, match="^--per_cell_logits: expected true or false, got 1.$"):
        config_lib.SearchConfig(per_cell_logits=1)
    saved = dict(config_lib.SearchConfig().to_dict(), seed=1.5)
    with pytest.raises(ValueError, match='^--search_dir: s/config.json: "seed": expected an '
                                         'integer, got 1.5.$'):
        config_lib.SearchConfig.from_dict(saved, source="--search_dir: s/config.json")
    # Integers are numbers; every preset passes.
    assert config_lib.SearchConfig(arch_lr=1).arch_lr == 1
    for preset in [*config_lib.PRESETS.values(), *config_lib.TRAIN_PRESETS.values()]:
        type(preset).from_dict(preset.to_dict())
