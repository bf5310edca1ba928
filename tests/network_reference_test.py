"""Parameters and multiply-adds of every DARTS-family genotype against the DARTS
reference implementation (PyTorch), run outside this project: see
docs/reference_numbers.md for how each figure was obtained."""

import pytest
import tensorflow as tf

from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network
from stacnas_tf import sizes

# (parameters without the auxiliary head, with it, multiply-adds of one image)
# of quark0/darts's NetworkCIFAR(C=36, 10 classes, 20 cells) at 32x32 and
# NetworkImageNet(C=48, 1000 classes, 14 cells) at 224x224.
REFERENCE = {
    "DARTS_V1": ((3_169_414, 3_645_840, 500_987_520), (4_510_432, 5_771_208, 505_864_704)),
    "DARTS_V2": ((3_349_342, 3_825_768, 528_359_040), (4_718_752, 5_979_528, 529_911_552)),
    "NASNET": ((3_830_950, 4_288_944, 603_452_448), (5_564_320, 6_800_520, 604_031_616)),
    "AMOEBANET": ((3_145_078, 3_603_072, 488_931_552), (4_627_360, 5_863_560, 526_746_624)),
    "PC_DARTS_CIFAR10": ((3_634_678, 4_111_104, 556_670_592), (5_270_560, 6_531_336, 571_137_408)),
    "PC_DARTS_IMAGENET": ((3_721_510, 4_197_936, 570_466_944), (5_342_464, 6_603_240, 581_627_328)),
    "PDARTS": ((3_433_798, 3_910_224, 532_174_464), (4_944_352, 6_205_128, 542_819_328)),
    "STACNAS_CIFAR10": ((3_714_382, 4_190_808, 575_111_808), (5_243_008, 6_503_784, 579_162_432)),
}


def test_every_published_genotype_has_reference_numbers():
    assert sorted(REFERENCE) == sorted(genotype_lib.PUBLISHED)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_counts_match_the_reference(name, stem):
    classes, channels, num_cells, side = (10, 36, 20, 32) if stem == "cifar" else (1000, 48, 14, 224)
    net = network.FinalNetwork(genotype_lib.PUBLISHED[name], classes, channels, num_cells,
                               stem=stem, auxiliary=True)
    net(tf.zeros([1, side, side, 3]), training=False)
    expected = REFERENCE[name][0 if stem == "cifar" else 1]
    assert (net.parameter_count(), net.parameter_count(include_auxiliary=True),
            sizes.multiply_adds(net, (side, side, 3))) == expected
