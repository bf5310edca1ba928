"""The presets: the paper's exact, the embedded default's documented deviations."""

import pytest

from stacnas_tf import config as config_lib
from stacnas_tf import search_space

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


@pytest.mark.parametrize("cls,key", [(config_lib.SearchConfig, "groups"),
                                     (config_lib.SearchConfig, "class_names"),
                                     (config_lib.TrainConfig, "class_names")])
def test_a_number_where_a_list_belongs_is_named_not_raised_raw(cls, key):
    # Not iterable: a TypeError from deep inside, were the kind not checked first.
    saved = dict(cls().to_dict(), **{key: 5})
    with pytest.raises(ValueError, match=f"^s/config.json: {key}: expected a list"):
        cls.from_dict(saved, source="s/config.json")


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


def test_training_presets_are_darts_recipes():
    # DARTS cnn/train.py defaults (quark0/darts): batch 96, lr 0.025 cosine to 0,
    # momentum 0.9, weight decay 3e-4, 600 epochs, C=36, 20 layers, auxiliary 0.4,
    # cutout 16, drop path 0.2, gradient clip 5.
    base = config_lib.TRAIN_PRESETS["base"]
    assert (base.batch_size, base.lr, base.lr_min, base.lr_schedule, base.momentum,
            base.weight_decay, base.epochs, base.channels, base.num_cells, base.aux_weight,
            base.cutout, base.drop_path, base.grad_clip_norm, base.network, base.autoaugment,
            base.label_smoothing, base.dataset, base.deformable, base.lr_decay_rate) == (
        96, 0.025, 0.0, "cosine", 0.9, 3e-4, 600, 36, 20, 0.4, 16, 0.2, 5.0, "cifar", False, 0.0,
        "cifar10", False, 0.97)
    # The StacNAS paper's `fancy` recipe: base + AutoAugment, 1200 epochs.
    assert config_lib.TRAIN_PRESETS["fancy"] == base.replace(autoaugment=True, epochs=1200)
    # DARTS cnn/train_imagenet.py: batch 128, lr 0.1 x 0.97 each epoch, weight decay
    # 3e-5, label smoothing 0.1, auxiliary 0.4, no drop path, clip 5; the DARTS
    # paper's mobile setting: 250 epochs, C=48, 14 cells, 224x224.
    imagenet = config_lib.TRAIN_PRESETS["imagenet_base"]
    assert (imagenet.batch_size, imagenet.lr, imagenet.lr_schedule, imagenet.lr_decay_rate,
            imagenet.weight_decay, imagenet.label_smoothing, imagenet.aux_weight,
            imagenet.drop_path, imagenet.grad_clip_norm, imagenet.epochs, imagenet.channels,
            imagenet.num_cells, imagenet.image_size, imagenet.network, imagenet.cutout,
            imagenet.momentum, imagenet.dataset) == (
        128, 0.1, "exponential", 0.97, 3e-5, 0.1, 0.4, 0.0, 5.0, 250, 48, 14, 224, "imagenet",
        0, 0.9, "imagenet2012")
    # Architecture logits of deformable edges: DARTS's Adam settings.
    assert (base.arch_lr, base.arch_weight_decay, base.seed) == (3e-4, 1e-3, 0)
    assert config_lib.NETWORK_PRESETS == {
        "cifar10": dict(network="cifar", channels=36, num_cells=20, num_classes=10,
                        image_shape=(32, 32, 3)),
        "cifar100": dict(network="cifar", channels=36, num_cells=20, num_classes=100,
                         image_shape=(32, 32, 3)),
        "imagenet_mobile": dict(network="imagenet", channels=48, num_cells=14, num_classes=1000,
                                image_shape=(224, 224, 3)),
    }


def test_small_presets_are_what_their_docs_say():
    default = config_lib.TRAIN_PRESETS["default"]
    assert (default.dataset, default.image_size, default.num_train_examples,
            default.num_eval_examples, default.channels, default.num_cells, default.epochs,
            default.batch_size, default.cutout, default.drop_path, default.aux_weight,
            default.lr) == ("fashion_mnist", 16, 8192, 2000, 8, 5, 4, 64, 4, 0.1, 0.0, 0.05)
    smoke = config_lib.TRAIN_PRESETS["smoke"]
    assert (smoke.dataset, smoke.channels, smoke.num_cells, smoke.epochs, smoke.batch_size,
            smoke.cutout, smoke.aux_weight, smoke.num_train_examples,
            smoke.num_eval_examples) == ("digits", 4, 3, 1, 32, 2, 0.0, 128, 64)
    search = config_lib.PRESETS["default"]
    assert (search.image_size, search.stage1_cells, search.stage2_cells, search.batch_size,
            search.channels, search.seed, search.steps_per_epoch, search.stage1_epochs,
            search.stage2_epochs, search.arch_lr, search.arch_warmup_epochs) == (
        16, 5, 5, 64, 8, 0, 100, 8, 8, 3e-2, 2)
    search_smoke = config_lib.PRESETS["smoke"]
    assert (search_smoke.dataset, search_smoke.stage1_cells, search_smoke.stage2_cells,
            search_smoke.stage1_epochs, search_smoke.stage2_epochs, search_smoke.batch_size,
            search_smoke.channels, search_smoke.num_train_examples) == (
        "digits", 3, 3, 1, 1, 32, 4, 128)
    assert config_lib.SearchConfig().arch_epsilon == 1e-8


S = config_lib.SearchConfig
T = config_lib.TrainConfig


@pytest.mark.parametrize("make,message", [
    (lambda: S(num_nodes=0), "--num_nodes: expected 1 to 16 nodes per cell, got 0"),
    (lambda: S(num_nodes=17), "--num_nodes: expected 1 to 16"),
    (lambda: S(stage2_epochs=0), "--stage2_epochs: expected a positive integer, got 0"),
    (lambda: S(batch_size=0), "--batch_size: expected a positive integer, got 0"),
    (lambda: S(stage1_cells=2), "--stage1_cells: a supernet of 2 cell\\(s\\) has no normal cell"),
    (lambda: S(stage2_cells=2), "--stage2_cells: a supernet of 2 cell"),
    (lambda: S(channels=0), "--channels: expected an even number >= 2, got 0"),
    (lambda: S(channels=7), "--channels: expected an even number >= 2, got 7"),
    (lambda: S(channels=1026), "--channels"),
    (lambda: S(image_size=2), "--image_size: expected a positive multiple of 4"),
    (lambda: S(image_size=18), "--image_size: expected a positive multiple of 4"),
    (lambda: S(image_size=1028), "--image_size"),
    (lambda: S(num_train_examples=0), "--num_train_examples: expected a positive number"),
    (lambda: S(num_train_examples=63, batch_size=64), "--batch_size=64 is larger than"),
    (lambda: S(steps_per_epoch=0), "--steps_per_epoch: expected a positive number of steps"),
    (lambda: S(arch_warmup_epochs=-1), "--arch_warmup_epochs: expected a number of epochs >= 0"),
    (lambda: S(stage1_epochs=3, stage2_epochs=5, arch_warmup_epochs=3),
     "--arch_warmup_epochs=3 leaves no epoch in which alpha moves \\(stages of 3/5 epochs\\)"),
    (lambda: S(grouping="flat", stage1_epochs=3, arch_warmup_epochs=3), "stages of 3 epochs"),
    (lambda: S(weight_lr=0.0), "--weight_lr: expected a positive number, got 0.0"),
    (lambda: S(arch_lr=-1e-3), "--arch_lr: expected a positive number"),
    (lambda: S(grad_clip_norm=-1.0), "--grad_clip_norm: expected a number >= 0, got -1.0"),
    (lambda: S(weight_momentum=1.5), "--weight_momentum: expected a number in \\[0, 1\\), got 1.5"),
    (lambda: S(weight_momentum=-0.5), "--weight_momentum: expected a number in \\[0, 1\\)"),
    (lambda: S(arch_beta_1=1.0), "--arch_beta_1: expected a number in \\[0, 1\\), got 1.0"),
    (lambda: S(arch_beta_2=1.0), "--arch_beta_2: expected a number in \\[0, 1\\)"),
    (lambda: S(arch_epsilon=0.0), "--arch_epsilon: expected a positive number"),
    (lambda: S(weight_decay=-1.0), "--weight_decay: expected a number >= 0, got -1.0"),
    (lambda: S(arch_weight_decay=-1e-3), "--arch_weight_decay: expected a number >= 0"),
    (lambda: S(weight_lr_min=-1.0), "--weight_lr_min: expected a rate in \\[0, --weight_lr=0.025\\]"),
    (lambda: S(weight_lr_min=0.1), "--weight_lr_min: expected a rate in \\[0, --weight_lr=0.025\\]"),
    (lambda: S(optimization="bi_level", num_train_examples=127, batch_size=64),
     "--num_train_examples: bi_level splits the data in two halves of at least one batch "
     "\\(64\\) each, got 127"),
    (lambda: S(seed=-1), "--seed: expected an integer in \\[0, 2\\^31\\), got -1"),
    (lambda: S(seed=2**31), "--seed: expected an integer in \\[0, 2\\^31\\)"),
    (lambda: S(stage1_cells=101), "--stage1_cells"),
    (lambda: T(epochs=0), "--epochs: expected a positive integer, got 0"),
    (lambda: T(num_cells=0), "--num_cells: expected a positive integer, got 0"),
    (lambda: T(channels=7), "--channels: expected an even number, got 7"),
    (lambda: T(num_cells=101), "--num_cells"),
    (lambda: T(image_size=30), "--image_size: expected a positive multiple of 4"),
    (lambda: T(image_size=0), "--image_size: expected a positive multiple of 4"),
    (lambda: T(num_eval_examples=0), "--num_eval_examples: expected a positive number"),
    (lambda: T(num_train_examples=95), "--batch_size=96 is larger than --num_train_examples=95"),
    (lambda: T(drop_path=1.0), "--drop_path: expected a rate in \\[0, 1\\), got 1.0"),
    (lambda: T(drop_path=-0.1), "--drop_path: expected a rate"),
    (lambda: T(aux_weight=-0.1), "--aux_weight: expected a number >= 0, got -0.1"),
    (lambda: T(label_smoothing=1.0), "--label_smoothing: expected a number in \\[0, 1\\), got 1.0"),
    (lambda: T(label_smoothing=1.5), "^--label_smoothing: expected a number in \\[0, 1\\), got 1.5"),
    (lambda: T(label_smoothing=-0.1), "--label_smoothing: expected a number in \\[0, 1\\)"),
    (lambda: T(cutout=-1), "--cutout: expected a number >= 0, got -1"),
    (lambda: T(momentum=1.0), "--momentum: expected a number in \\[0, 1\\)"),
    (lambda: T(weight_decay=-3e-4), "--weight_decay: expected a number >= 0"),
    (lambda: T(arch_weight_decay=-1.0), "--arch_weight_decay: expected a number >= 0"),
    (lambda: T(arch_lr=0.0), "--arch_lr: expected a positive number"),
    (lambda: T(grad_clip_norm=-5.0), "--grad_clip_norm: expected a number >= 0"),
    (lambda: T(lr_min=-1.0), "--lr_min: expected a rate in \\[0, --lr=0.025\\] \\(a negative rate"),
    (lambda: T(lr_min=0.5), "--lr_min: expected a rate in \\[0, --lr=0.025\\]"),
    (lambda: T(lr_decay_rate=-1.0), "--lr_decay_rate: expected a factor in \\(0, 1\\]"),
    (lambda: T(lr_decay_rate=0.0), "--lr_decay_rate: expected a factor in \\(0, 1\\]"),
    (lambda: T(lr_decay_rate=1.5), "--lr_decay_rate: expected a factor in \\(0, 1\\]"),
    (lambda: T(lr=0.0), "--lr: expected a positive number, got 0.0"),
    (lambda: T(seed=-1), "--seed"),
    (lambda: T(class_names=("a",)), "class_names: expected a list of at least 2 names"),
    (lambda: T(class_names="ab"), "class_names: expected a list of at least 2 names"),
])
def test_each_setting_is_refused_past_its_bound(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_settings_at_their_bounds_are_accepted():
    S(num_nodes=1, stage1_cells=3)
    S(num_nodes=16, stage1_cells=100, stage2_cells=100)
    S(channels=2, image_size=4, num_train_examples=64, batch_size=64, steps_per_epoch=1)
    S(channels=1024, image_size=1024, seed=2**31 - 1)
    S(stage1_epochs=3, stage2_epochs=5, arch_warmup_epochs=2)
    S(optimization="bi_level", num_train_examples=128, batch_size=64)
    T(num_cells=100, channels=1024, image_size=1024, drop_path=0.0, label_smoothing=0.0,
      aux_weight=0.0, num_train_examples=96, seed=0)
    T(image_size=4, channels=2)
    # 0 turns clipping, cutout and decay off; a constant rate is a factor of 1.
    S(grad_clip_norm=0.0, weight_decay=0.0, arch_weight_decay=0.0, weight_momentum=0.0,
      weight_lr_min=0.025)
    T(grad_clip_norm=0.0, cutout=0, weight_decay=0.0, momentum=0.0, lr_min=0.025,
      lr_decay_rate=1.0)
    # A cosine schedule down to 0 (PyTorch's CosineAnnealingLR defaults eta_min to 0).
    S(weight_lr_min=0.0)
    T(lr_min=0.0)


def test_recorded_class_names_must_agree():
    config = T()
    named = config_lib.with_class_names(config, ["cat", "dog"])
    assert named.class_names == ("cat", "dog") and config_lib.with_class_names(config, None) is config
    assert config_lib.with_class_names(named, ("cat", "dog")) == named
    with pytest.raises(ValueError, match="^--train_dir: the data's classes \\['dog', 'cat'\\] are "
                                         "not the classes this run was made with \\['cat', 'dog'\\]"):
        config_lib.with_class_names(named, ["dog", "cat"], "--train_dir")


def test_unknown_fields_name_what_the_file_is():
    search = S().to_dict()
    with pytest.raises(ValueError, match="^s.json: not a search's settings \\(a training run's "
                                         "settings\\): unknown fields \\['autoaugment', 'aux_weight'"):
        S.from_dict(T().to_dict(), source="s.json")
    with pytest.raises(ValueError, match="^t.json is not a training run's settings \\(a search's "
                                         "settings\\): unknown fields \\['arch_beta_1'"):
        T.from_dict(search, source="t.json")
    with pytest.raises(ValueError, match="^s.json: not a search's settings: unknown fields "
                                         "\\['bogus'\\]"):
        S.from_dict({"bogus": 1}, source="s.json")


def test_values_inside_the_bounds_are_accepted_everywhere():
    S(num_train_examples=1, batch_size=1, optimization="one_level")
    S(optimization="bi_level", num_train_examples=200, batch_size=64)
    T(num_train_examples=1, num_eval_examples=1, batch_size=1)
    T(channels=6, image_size=12)
    S(channels=6, image_size=12)
    T(class_names=("a", "b", "c"))


@pytest.mark.parametrize("make,message", [
    (lambda: T(lr=float("nan")), "--lr: expected a finite number, got nan"),
    (lambda: S(arch_lr=float("inf")), "--arch_lr: expected a finite number, got inf"),
    (lambda: T(seed=2**31 + 5), "--seed: expected an integer in \\[0, 2\\^31\\)"),
    (lambda: T(drop_path=1.5), "--drop_path: expected a rate in \\[0, 1\\)"),
    (lambda: T(label_smoothing=1.5), "--label_smoothing: expected a number in \\[0, 1\\)"),
    (lambda: T(lr=-0.5), "--lr: expected a positive number, got -0.5"),
    (lambda: S(stage1_epochs=3, stage2_epochs=5, arch_warmup_epochs=4), "--arch_warmup_epochs=4"),
])
def test_values_past_the_bounds_on_the_other_side_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_settings_read_from_json_compare_by_value():
    # Strings read from a file are not the interned literals of the code.
    import json

    text = json.dumps(dict(S().to_dict(), optimization="bi_level", num_train_examples=100,
                           batch_size=64))
    with pytest.raises(ValueError, match="bi_level splits the data in two halves"):
        S.from_dict(json.loads(text))
    # A flat search has one stage: its warm-up is bounded by stage 1 alone.
    flat = json.dumps(dict(S().to_dict(), grouping="flat", stage1_epochs=10, stage2_epochs=3,
                           arch_warmup_epochs=5))
    assert S.from_dict(json.loads(flat)).arch_warmup_epochs == 5


def test_configs_are_frozen_and_older_files_take_defaults():
    import dataclasses

    for config in (S(), T()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.seed = 3
    assert S().space == search_space.SearchSpace(groups=S().groups, num_nodes=4)
    assert T.from_dict({"genotype": "DARTS_V1"}) == T(genotype="DARTS_V1")
    assert S.from_dict({"seed": 3}) == S(seed=3)


def test_messages_list_at_most_a_few_names():
    with pytest.raises(ValueError) as error:
        S.from_dict({f"bogus_{k}": 1 for k in range(8)}, source="s.json")
    assert "unknown fields ['bogus_0', 'bogus_1', 'bogus_2', 'bogus_3', 'bogus_4']." in str(error.value)
    with pytest.raises(ValueError) as error:
        T.from_dict({f"bogus_{k}": 1 for k in range(8)}, source="t.json")
    assert "unknown fields ['bogus_0', 'bogus_1', 'bogus_2', 'bogus_3', 'bogus_4']." in str(error.value)
    # Only settings from both a search and a training are called the other kind.
    with pytest.raises(ValueError, match="^s.json: not a search's settings: unknown"):
        S.from_dict({"genotype": "DARTS_V2"}, source="s.json")
    names = [f"c{k}" for k in range(12)]
    named = config_lib.with_class_names(T(), names)
    with pytest.raises(ValueError) as error:
        config_lib.with_class_names(named, names[::-1])
    assert f"the data's classes {names[::-1][:10]} are not the classes this run was made with " \
           f"{names[:10]}." in str(error.value)
    named = config_lib.with_class_names(T(), ["dog", "cat"])
    with pytest.raises(ValueError, match="are not the classes"):
        config_lib.with_class_names(named, ["cat", "dog"])


def test_a_message_that_is_not_about_one_key_keeps_its_flags():
    saved = dict(T().to_dict(), num_train_examples=10)
    with pytest.raises(ValueError, match="^t.json: --batch_size=96 is larger than "
                                         "--num_train_examples=10; an epoch needs"):
        T.from_dict(saved, source="t.json")
