import pytest

from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop.engine.spec import format_layers, parse_layers, parse_network_spec


def test_parse_dlt_example():
    layers = parse_layers("6c5-s2-12c5-s2")
    assert [type(l) for l in layers] == [Conv, Subsample, Conv, Subsample]
    assert (layers[0].outputmaps, layers[0].kernelsize) == (6, (5, 5))
    assert layers[1].scale == 2
    assert (layers[2].outputmaps, layers[2].kernelsize) == (12, (5, 5))


@pytest.mark.parametrize("spec", ["6c5-s2-12c5-s2", "3c3", "4c5x3-s2", "s2-2c3", "10c1-s1-1c2"])
def test_round_trip(spec):
    assert format_layers(parse_layers(spec)) == spec


def test_rectangular_kernel_and_spaces():
    (conv,) = parse_layers(" 4C5x3 ")
    assert conv.kernelsize == (5, 3)


def test_network_spec_round_trip():
    net = Network([Input(28, 28), *parse_layers("6c5-s2-12c5-s2")], n_outputs=10, seed=0)
    shape, layers, n_out = parse_network_spec(net.spec)
    assert net.spec == "28x28-6c5-s2-12c5-s2-10o"
    assert shape == (28, 28, 1) and n_out == 10 and format_layers(layers) == "6c5-s2-12c5-s2"
    assert parse_network_spec("32x32x3-2c3") [0] == (32, 32, 3)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "empty"),
        ("6c5-x2", "'x2'"),
        ("6c5--s2", "''"),
        ("0c5", "number of maps"),
        ("6c0", "kernel size"),
        ("s0", "scale"),
        ("6c", "'6c'"),
        ("c5", "'c5'"),
    ],
)
def test_errors_name_the_token(spec, words):
    with pytest.raises(ConvpropError, match="layer spec") as info:
        parse_layers(spec)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_not_a_string():
    with pytest.raises(ConvpropError, match="string"):
        parse_layers(6)
