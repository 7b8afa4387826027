"""The VRNN module: every variant and observation kind, masking, structure, init, generation."""

import itertools

import pytest
import torch

from vrnn_lightning.model import VARIANTS, VRNN
from vrnn_lightning.networks import PAPER_MAX_NORM, max_norm_usage

# every width different (not conf/debug.yaml's), so that a layer wired to the wrong one fails
SMALL = dict(
    h_dim=24, z_dim=4, phi_x_dim=12, phi_z_dim=10, enc_dim=9, prior_dim=8, dec_dim=11,
    mlp_layers=2, n_components=3,
)  # fmt: skip
KINDS = {"audio": 10, "strokes": 3}
CASES = list(itertools.product(VARIANTS, KINDS))


def make(variant, observation, **kw):
    torch.manual_seed(0)
    return VRNN(variant, x_dim=KINDS[observation], observation=observation, **{**SMALL, **kw})


def data(observation, batch=4, steps=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, KINDS[observation], generator=g)
    if observation == "strokes":
        x[..., 0] = (torch.rand(batch, steps, generator=g) < 0.3).float()
    return x


@pytest.mark.parametrize("variant,observation", CASES)
def test_shapes_finite_loss_and_gradients_reach_every_parameter(variant, observation):
    model = make(variant, observation)
    x = data(observation)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False
    terms = model(x, mask)
    for t in (terms.log_px, terms.kl, terms.log_pz, terms.log_qz):
        assert t.shape == (4, 6) and torch.isfinite(t).all()
    loss = -(terms.log_px - terms.kl).sum(1).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient reaches {missing}"
    assert (terms.kl >= 0).all()


@pytest.mark.parametrize("variant,observation", CASES)
def test_padding_contributes_zero_and_batch_mates_do_not_matter(variant, observation):
    model = make(variant, observation)
    x = data(observation, batch=3, steps=7)
    noise = torch.randn(3, 7, SMALL["z_dim"])
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 4:] = False
    padded = x.clone()
    padded[0, 4:] = float("nan")  # whatever is in the padding must not leak
    terms = model(padded, mask, noise=noise)
    for t in (terms.log_px, terms.kl, terms.log_pz, terms.log_qz):
        assert (t[0, 4:] == 0).all() and torch.isfinite(t).all()
    # sequence 0 alone, unpadded, with the same noise: the same per-step terms
    alone = model(x[:1, :4], noise=noise[:1, :4])
    torch.testing.assert_close(terms.log_px[0, :4], alone.log_px[0])
    torch.testing.assert_close(terms.kl[0, :4], alone.kl[0])
    # and in a different batch
    other = torch.cat([data(observation, batch=2, steps=7, seed=9), x[:1]])
    moved = model(other, noise=torch.cat([torch.randn(2, 7, SMALL["z_dim"]), noise[:1]]))
    torch.testing.assert_close(moved.log_px[2, :4], alone.log_px[0])


@pytest.mark.parametrize("variant,observation", CASES)
def test_fused_forward_equals_the_step_by_step_path_in_values_and_gradients(variant, observation):
    """forward (the fused loop, batched weight gradients) and forward_stepwise (VRNN.step, every
    network inside the loop, plain autograd) compute the same terms and the same gradients,
    masked batch included."""
    x = data(observation, steps=7)
    noise = torch.randn(4, 7, SMALL["z_dim"])
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[2, 4:] = False
    results = []
    for score in ("forward", "forward_stepwise"):
        model = make(variant, observation, init="torch")
        terms = getattr(model, score)(x, mask, noise=noise)
        loss = -(terms.log_px - terms.kl).sum(1).mean() - terms.log_weight.sum(1).mean()
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append((terms, grads))
    (fused, fused_grads), (stepwise, step_grads) = results
    for name in ("log_px", "kl", "log_pz", "log_qz"):
        torch.testing.assert_close(
            getattr(fused, name), getattr(stepwise, name), atol=1e-4, rtol=1e-5, msg=name
        )
    for a, b in zip(fused.final_state, stepwise.final_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert fused_grads.keys() == step_grads.keys()
    for name, grad in step_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("variant", ["rnn_gmm", "vrnn_gmm"])
def test_carried_state_continues_a_sequence(variant):
    """Truncated BPTT: two halves with the state carried equal the whole."""
    model = make(variant, "audio")
    x = data("audio", steps=8)
    noise = torch.randn(4, 8, SMALL["z_dim"])
    whole = model(x, noise=noise)
    first = model(x[:, :5], noise=noise[:, :5])
    second = model(x[:, 5:], noise=noise[:, 5:], state=first.final_state)
    torch.testing.assert_close(torch.cat([first.log_px, second.log_px], 1), whole.log_px)


def test_vrnn_i_prior_is_standard_normal_and_has_no_prior_network():
    model = make("vrnn_i_gauss", "audio")
    assert not any(n.startswith("prior") for n, _ in model.named_parameters())
    prior = model.p_z(torch.randn(5, SMALL["h_dim"]))
    assert (prior.loc == 0).all() and (prior.scale == 1).all()
    assert prior.loc.shape == (5, SMALL["z_dim"])
    learned = make("vrnn_gauss", "audio")
    assert learned.p_z(torch.randn(5, SMALL["h_dim"])).scale.std() > 0


def test_paper_initialisation():
    model = make("vrnn_gmm", "audio", init="paper", std_bias_init=0.6)
    for name, p in model.named_parameters():
        if name.endswith("weight") and "weight_hh" not in name:
            assert p.abs().max() <= 0.08, name
        if name.startswith("rnn.bias"):
            assert (p == 0).all(), name
    for name in ("posterior.std.bias", "prior.std.bias", "output.std.bias"):
        assert torch.allclose(model.get_parameter(name), torch.tensor(0.6))
    assert (model.output.mu.bias == 0).all()
    h = SMALL["h_dim"]
    for block in model.rnn.weight_hh_l0.detach().chunk(4):
        torch.testing.assert_close(block @ block.T, torch.eye(h), atol=1e-5, rtol=0)


def test_max_norm_caps_each_input_block_of_non_recurrent_weights():
    model = make("vrnn_gauss", "audio", init="torch")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50)
    hh_before = model.rnn.weight_hh_l0.detach().clone()
    model.apply_max_norm()
    enc0 = model.encoder[0]
    for block in enc0.weight.split(list(enc0.in_blocks), dim=1):  # [phi_x | h] parents
        assert block.norm(dim=1).max() <= PAPER_MAX_NORM + 1e-4
    for block in model.rnn.weight_ih_l0.split(list(model.rnn.in_blocks), dim=1):
        assert block.norm(dim=1).max() <= PAPER_MAX_NORM + 1e-4
    assert torch.equal(model.rnn.weight_hh_l0, hh_before)  # recurrent weights untouched
    # a row already within the cap is left exactly as it was
    small = make("rnn_gauss", "audio", init="torch")
    before = small.decoder[0].weight.detach().clone()
    small.apply_max_norm(1e6)
    assert torch.equal(small.decoder[0].weight, before)


def test_max_norm_usage_says_whether_the_cap_binds():
    model = make("vrnn_gmm", "audio")  # the paper's init: every row far below the cap
    largest, at_cap = max_norm_usage(model)
    assert 0 < largest < 1 and at_cap == 0
    with torch.no_grad():
        model.encoder[0].weight[:3].mul_(100)  # three units' rows, from both parents
    assert max_norm_usage(model)[0] > 1
    model.apply_max_norm()
    largest, at_cap = max_norm_usage(model)
    assert largest == pytest.approx(1, abs=1e-5) and 0 < at_cap < 0.05  # 6 rows of hundreds
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    model.apply_max_norm()
    assert max_norm_usage(model)[1] == 1  # every capped row at the cap


@pytest.mark.parametrize("variant,observation", CASES)
def test_generation_shape_finite_and_primer_prefix(variant, observation):
    model = make(variant, observation)
    samples, means = model.generate(3, 5)
    assert samples.shape == means.shape == (3, 5, KINDS[observation])
    assert torch.isfinite(samples).all() and torch.isfinite(means).all()
    primer = data(observation, batch=1, steps=4)
    samples, means = model.generate(2, 5, primer=primer)
    assert samples.shape == (2, 9, KINDS[observation])
    assert torch.equal(samples[:, :4], primer.expand(2, -1, -1))
    assert torch.equal(means[:, :4], primer.expand(2, -1, -1))
    if observation == "strokes":
        assert set(samples[:, 4:, 0].unique().tolist()) <= {0.0, 1.0}


def test_generation_step_is_the_training_recurrence():
    """Teacher-forcing the generator's pieces (p_x, then the recurrence on the observed x_t)
    reproduces forward()'s likelihood (rnn_*)."""
    model = make("rnn_gmm", "audio")
    x = data("audio")
    state = model.initial_state(4)
    log_px = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            log_px.append(model.p_x(None, state[0]).log_prob(x[:, t]))
            state = model.recurrence(model.phi_x(x[:, t]), None, state)
        torch.testing.assert_close(torch.stack(log_px, 1), model(x).log_px, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["vrnn_gmm", "vrnn_i_gauss"])
def test_generation_draws_z_from_the_prior_and_feeds_back_the_sample(variant):
    """generate() is the step API's pieces in the paper's order: z_t ~ p(z_t | h_{t-1}),
    x_t ~ p(x_t | z_t, h_{t-1}), h_t = LSTM(phi_x(x_t), phi_z(z_t), h_{t-1})."""
    model = make(variant, "audio")
    torch.manual_seed(5)
    samples, means = model.generate(3, 4)
    torch.manual_seed(5)
    state = model.initial_state(3)
    with torch.no_grad():
        for t in range(4):
            phi_z_t = model.phi_z(model.p_z(state[0]).sample())
            p_x = model.p_x(phi_z_t, state[0])
            x_t = p_x.sample()
            torch.testing.assert_close(samples[:, t], x_t)
            torch.testing.assert_close(means[:, t], p_x.mean)
            state = model.recurrence(model.phi_x(x_t), phi_z_t, state)


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match="model.variant"):
        VRNN("vrnn_bogus")
    with pytest.raises(ValueError, match="model.init"):
        VRNN("rnn_gauss", init="xavier", **SMALL)
    with pytest.raises(ValueError, match="mlp_layers"):
        VRNN("rnn_gauss", **{**SMALL, "mlp_layers": 0})


@pytest.mark.slow
def test_compiled_decoder_gives_the_same_terms_and_gradients():
    """model.compile=true (torch.compile of the decoder and output density) changes no number."""
    x = data("audio")
    noise = torch.randn(4, 6, SMALL["z_dim"])
    results = []
    for compile in (False, True):
        model = make("vrnn_gmm", "audio", compile=compile)
        terms = model(x, noise=noise)
        (-(terms.log_px - terms.kl).sum()).backward()
        results.append((terms.log_px.detach(), model.output.mu.weight.grad))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["rnn_gmm", "vrnn_gmm"])
def test_scoring_in_slices_equals_one_pass(variant, monkeypatch):
    # without gradients, many rows (IWAE's K x B) are decoded in cache-sized slices
    import vrnn_lightning.model_parts as model_parts

    model = make(variant, "audio")
    x = data("audio", batch=5, steps=6)
    noise = torch.randn(3 * 5, 6, SMALL["z_dim"])
    with torch.no_grad():
        whole = model(x, n_samples=3, noise=noise)
        monkeypatch.setattr(model_parts, "SCORING_ROWS", 13)  # slices of 2 sequences
        sliced = model(x, n_samples=3, noise=noise)
    torch.testing.assert_close(sliced.log_px, whole.log_px)
    torch.testing.assert_close(sliced.log_weight, whole.log_weight)
