import pytest
import tensorflow as tf

from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network
from stacnas_tf import ops as ops_lib
from stacnas_tf import search_space
from stacnas_tf import sizes


def test_describe_reports_the_mobile_setting():
    result = sizes.describe(genotype_lib.PUBLISHED["DARTS_V1"], "cifar10")
    # quark0/darts NetworkCIFAR (docs/reference_numbers.md).
    assert (result["parameters"], result["parameters_with_auxiliary"], result["multiply_adds"]) == (
        3_169_414, 3_645_840, 500_987_520)
    assert result["mobile_setting"] is None  # an ImageNet notion
    with pytest.raises(ValueError, match="--preset"):
        sizes.describe(genotype_lib.PUBLISHED["DARTS_V1"], "mnist")


def test_describe_puts_darts_v2_on_imagenet_in_the_mobile_setting():
    # The DARTS paper's mobile setting: under 600M multiply-adds at 224 x 224;
    # DARTS_V2 has 529.9M (quark0/darts, docs/reference_numbers.md).
    result = sizes.describe(genotype_lib.PUBLISHED["DARTS_V2"], "imagenet_mobile")
    assert result["multiply_adds"] == 529_911_552
    assert result["mobile_setting"] is True
    # NASNet's cell has 604.0M (the same reference): over the bound.
    result = sizes.describe(genotype_lib.PUBLISHED["NASNET"], "imagenet_mobile")
    assert result["multiply_adds"] == 604_031_616
    assert result["mobile_setting"] is False


def test_multiply_adds_match_a_hand_count():
    skip = [("skip_connect", 0), ("skip_connect", 1)] * 4
    genotype = genotype_lib.Genotype.from_edges(skip, [2, 3, 4, 5], skip, [2, 3, 4, 5])
    net = network.FinalNetwork(genotype, 10, 4, 3, stem="cifar", auxiliary=False)
    net(tf.zeros([1, 8, 8, 1]))
    stem = 8 * 8 * 9 * 1 * 12
    cell0 = 2 * (64 * 12 * 4)  # two 1x1 preprocessing convs; identity edges are free
    cell1 = 64 * 12 * 8 + 64 * 16 * 8 + 8 * (2 * 16 * 8 * 4)  # 8 FactorizedReduce edges at 4x4
    cell2 = 2 * 16 * 16 * 8 + 16 * 32 * 16 + 8 * (2 * 4 * 16 * 8)
    classifier = 64 * 10
    assert sizes.multiply_adds(net, (8, 8, 1)) == stem + cell0 + cell1 + cell2 + classifier


# Multiply-adds of one op at 8x8 input, 4 channels, counted by hand from DARTS's
# operations.py: every conv costs output pixels x kernel area x input channels
# per group x output channels; pools, identity and BatchNorm cost nothing.
def _op_hand_count(name, stride, side=8, c=4):
    out = (side // stride) ** 2
    if name == "skip_connect":
        return 0 if stride == 1 else 2 * out * c * (c // 2)  # two 1x1 convs to c/2 each
    if name.endswith("pool_3x3"):
        return 0
    if name == "conv_7x1_1x7":  # 1x7 (stride 1 x s) then 7x1 (stride s x 1), full convs
        return side * (side // stride) * 7 * c * c + out * 7 * c * c
    k = int(name[-1])
    depthwise_pointwise = out * k * k * c + out * c * c
    if name.startswith("sep_conv"):  # the second block runs at stride 1 on the output size
        return 2 * depthwise_pointwise
    return depthwise_pointwise  # dil_conv: one dilated depthwise + pointwise


@pytest.mark.parametrize("name", [op for op in search_space.OPS if op != "none"])
@pytest.mark.parametrize("stride", [1, 2])
def test_multiply_adds_of_every_op_match_a_hand_count(name, stride):
    layer = ops_lib.make_op(name, 4, stride, affine=True, search=False, layer_name=name)
    layer(tf.zeros([1, 8, 8, 4]), training=False)
    assert sizes.multiply_adds(layer, (8, 8, 4)) == _op_hand_count(name, stride)


def test_multiply_adds_of_darts_v2_on_imagenet_match_the_reference():
    # quark0/darts NetworkImageNet, convolutions and linear layers (docs/reference_numbers.md);
    # DARTS_V2 has stride-1 dilated convs, which TF runs on a space-to-batch input.
    net = network.FinalNetwork(genotype_lib.PUBLISHED["DARTS_V2"], 1000, 48, 14, stem="imagenet",
                               auxiliary=True)
    net(tf.zeros([1, 224, 224, 3]), training=False)
    assert sizes.multiply_adds(net, (224, 224, 3)) == 529_911_552


def test_multiply_adds_of_any_keras_model_match_a_hand_count():
    # Layers and settings the DARTS networks do not use: valid padding with
    # stride and dilation, groups, a depth multiplier, a dense layer on a map.
    import keras

    model = keras.Sequential([
        keras.Input((9, 9, 4)),
        keras.layers.Conv2D(6, 3, strides=2, padding="valid"),  # -> 4x4x6
        keras.layers.Conv2D(4, 1, groups=2),  # -> 4x4x4
        keras.layers.DepthwiseConv2D(2, dilation_rate=2, depth_multiplier=3),  # -> 2x2x12
        keras.layers.Dense(5),  # on every pixel -> 2x2x5
    ])
    # pixels x kernel area x input channels per group x filters (6 channels in 2 groups)
    expected = (4 * 4 * 9 * 4 * 6) + (4 * 4 * 1 * 3 * 4) + (2 * 2 * 4 * 4 * 3) + (2 * 2 * 12 * 5)
    assert sizes.multiply_adds(model, (9, 9, 4)) == expected
    # "same" padding at stride 2 on an odd side: ceil(9 / 2) = 5 rows and columns.
    odd = keras.Sequential([keras.Input((9, 9, 2)), keras.layers.Conv2D(3, 3, strides=2,
                                                                        padding="same")])
    assert sizes.multiply_adds(odd, (9, 9, 2)) == 5 * 5 * 9 * 2 * 3
    # An even kernel, valid padding: 9 - (4 - 1) = 6 rows and columns.
    even = keras.Sequential([keras.Input((9, 9, 2)), keras.layers.Conv2D(3, 4)])
    assert sizes.multiply_adds(even, (9, 9, 2)) == 6 * 6 * 16 * 2 * 3


def test_counting_leaves_keras_classes_as_they_were():
    import keras

    classes = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    before = [(cls.call, "call" in cls.__dict__) for cls in classes]
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(2, 1)])
    sizes.multiply_adds(model, (4, 4, 2))
    with pytest.raises(ValueError):  # a model that fails while counting
        sizes.multiply_adds(model, (4, 4, 3))
    assert [(cls.call, "call" in cls.__dict__) for cls in classes] == before
