"""Variant: the six names of the paper's Table 1 parsed once, and refused when unknown."""

import pytest

from vrnn_lightning.variant import VARIANTS, Variant


def test_every_variant_parses_and_round_trips():
    parsed = {name: Variant.parse(name) for name in VARIANTS}
    assert {name: (v.latent, v.output) for name, v in parsed.items()} == {
        "rnn_gauss": ("none", "gauss"),
        "rnn_gmm": ("none", "gmm"),
        "vrnn_gauss": ("learned_prior", "gauss"),
        "vrnn_gmm": ("learned_prior", "gmm"),
        "vrnn_i_gauss": ("standard_prior", "gauss"),
        "vrnn_i_gmm": ("standard_prior", "gmm"),
    }
    assert all(v.name == name == str(v) for name, v in parsed.items())
    assert [n for n, v in parsed.items() if v.has_latent] == [n for n in VARIANTS if "vrnn" in n]
    assert [n for n, v in parsed.items() if v.learned_prior] == ["vrnn_gauss", "vrnn_gmm"]


@pytest.mark.parametrize("name", ["vrnn", "vrnn_i", "rnn_pen", "VRNN_GMM", "vrnn_gmm "])
def test_an_unknown_name_is_refused_with_the_valid_ones(name):
    with pytest.raises(ValueError, match="model.variant: .* valid: rnn_gauss, rnn_gmm"):
        Variant.parse(name)
