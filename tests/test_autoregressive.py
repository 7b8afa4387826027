"""The within-frame output heads (model.output=autoregressive): a normalised chain of
conditionals, sampled along the chain, in every variant and through the commands."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import REPO, TINY_MODEL

from vrnn_lightning import evaluate, fit, load_pretrained, sample
from vrnn_lightning.autoregressive import (
    AutoregressiveHead,
    AutoregressivePenHead,
    MaskedLinear,
)
from vrnn_lightning.config import ConfigError, load_config
from vrnn_lightning.model import VRNN
from vrnn_lightning.networks import paper_init_


def _head(observation: str, x_dim: int, k: int, context: int = 5, hidden: int = 12):
    """A head with strong within-frame dependence: its masked weights scaled up from init."""
    torch.manual_seed(0)
    if observation == "strokes":
        head = AutoregressivePenHead(context, k, 1e-4, hidden)
    else:
        head = AutoregressiveHead(context, x_dim, k, 1e-4, hidden)
    paper_init_(head)
    with torch.no_grad():
        for sub in head.modules():
            if isinstance(sub, MaskedLinear):
                sub.weight.normal_(0, 0.3).mul_(sub.mask)
    return head


def _frame_chain(head, c, x):
    """log p(x | c) one dimension at a time: row d read with x_>=d replaced by noise (which
    it must not see), and the same row from the sampler's incremental pass."""
    total_masked, total_stepper = 0.0, 0.0
    dist = head(c)
    stepper = head.conditioner.stepper(c)
    for d in range(x.shape[-1]):
        scrambled = x.clone()
        scrambled[..., d:] = torch.randn_like(scrambled[..., d:]) * 5
        row = dist.conditionals(scrambled)
        total_masked = total_masked + row.log_prob(x)[..., d]
        one = head.family(dist.direct[..., d, :] + stepper.row(d))
        total_stepper = total_stepper + one.log_prob(x[..., d])
        stepper.update(d, x[..., d])
    return total_masked, total_stepper


@pytest.mark.parametrize("k", [1, 3])
def test_frame_log_density_is_the_chain_of_its_conditionals(k):
    head = _head("audio", 6, k)
    c, x = torch.randn(4, 5), torch.randn(4, 6)
    one_pass = head(c).log_prob(x)
    masked, stepped = _frame_chain(head, c, x)
    torch.testing.assert_close(one_pass, masked, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_pass, stepped, rtol=1e-5, atol=1e-5)
    # and x_d matters for x_>d: the chain is not the factorised head in disguise
    x2 = x.clone()
    x2[:, 0] += 1.0
    means = head(c).conditionals(x).mean, head(c).conditionals(x2).mean
    assert torch.equal(means[0][:, 0], means[1][:, 0])  # x_1's own conditional: unchanged
    assert not torch.allclose(means[0][:, 1:], means[1][:, 1:])


@pytest.mark.parametrize("k", [1, 2])
def test_pen_log_density_is_pen_then_dx_then_dy(k):
    head = _head("strokes", 3, k)
    c = torch.randn(6, 5)
    x = torch.randn(6, 3)
    x[:, 0] = torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.float32)
    dist = head(c)
    expected = dist.pen.log_prob(x[:, 0])
    stepper = head.conditioner.stepper(c)
    stepper.update(0, x[:, 0])
    for d in (1, 2):
        expected = expected + head.family(dist.direct[:, d - 1] + stepper.row(d)).log_prob(x[:, d])
        stepper.update(d, x[:, d])
    torch.testing.assert_close(dist.log_prob(x), expected, rtol=1e-5, atol=1e-5)


def _grid(half_width: float = 12.0, n: int = 481):
    g = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([a, b], -1).reshape(-1, 2).float(), (g[1] - g[0]).item(), n


@pytest.mark.parametrize("k", [1, 3])
def test_frame_density_integrates_to_one_for_d2(k):
    head = _head("audio", 2, k)
    points, step, n = _grid()
    for c in torch.randn(3, 5):
        density = head(c.expand(len(points), 5)).log_prob(points).double().exp()
        mass = torch.trapezoid(torch.trapezoid(density.reshape(n, n), dx=step), dx=step)
        assert abs(mass.item() - 1.0) < 2e-3


def test_pen_density_sums_over_the_pen_and_integrates_to_one():
    head = _head("strokes", 3, 2)
    points, step, n = _grid()
    c = torch.randn(5).expand(len(points), 5)
    mass = 0.0
    for pen in (0.0, 1.0):
        x = torch.cat([torch.full((len(points), 1), pen), points], -1)
        density = head(c).log_prob(x).double().exp().reshape(n, n)
        mass += torch.trapezoid(torch.trapezoid(density, dx=step), dx=step).item()
    assert abs(mass - 1.0) < 2e-3


def _standardised(conditional, value):
    return (value - conditional.mean) / conditional.variance.sqrt()


@pytest.mark.parametrize("k", [1, 3])
def test_frame_samples_follow_the_conditionals(k):
    """Each x_d's residual against its conditional at the sampled x_<d has mean 0 and
    variance 1, within Monte Carlo error (5 standard errors)."""
    torch.manual_seed(1)
    head = _head("audio", 3, k)
    n = 40_000
    c = torch.randn(1, 5).expand(n, 5)
    with torch.no_grad():
        x = head(c).sample()
        z = _standardised(head(c).conditionals(x), x)  # (n, D)
    assert torch.isfinite(x).all()
    assert z.mean(0).abs().max() < 5 / math.sqrt(n)
    fourth = z.pow(4).mean(0)  # the variance estimate's own spread
    assert ((z.var(0) - 1).abs() < 5 * ((fourth - 1) / n).sqrt()).all()
    # sample_shape: the same chain, (S, *batch, D)
    assert head(c[:2]).sample((7,)).shape == (7, 2, 3)


def test_pen_samples_follow_the_conditionals():
    torch.manual_seed(2)
    head = _head("strokes", 3, 2)
    n = 40_000
    c = torch.randn(1, 5).expand(n, 5)
    with torch.no_grad():
        dist = head(c)
        x = dist.sample()
        p = torch.sigmoid(dist.pen.logits[0])
        assert set(x[:, 0].unique().tolist()) <= {0.0, 1.0}
        assert abs(x[:, 0].mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
        stepper = head.conditioner.stepper(c)
        stepper.update(0, x[:, 0])
        for d in (1, 2):
            conditional = head.family(dist.direct[:, d - 1] + stepper.row(d))
            z = _standardised(conditional, x[:, d])
            assert abs(z.mean()) < 5 / math.sqrt(n)
            assert abs(z.var() - 1) < 5 * math.sqrt((z.pow(4).mean() - 1) / n)
            stepper.update(d, x[:, d])


@pytest.mark.parametrize(
    "variant", ["rnn_gauss", "rnn_gmm", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss", "vrnn_i_gmm"]
)
@pytest.mark.parametrize("observation,x_dim", [("audio", 5), ("strokes", 3)])
def test_every_variant_takes_the_head_fused_equal_to_per_step(variant, observation, x_dim):
    torch.manual_seed(3)
    model = VRNN(variant, x_dim=x_dim, observation=observation, output="autoregressive",
                 **{**TINY_MODEL, "n_components": 3})  # fmt: skip
    x = torch.randn(2, 4, x_dim)
    if observation == "strokes":
        x[..., 0] = (x[..., 0] > 0).float()
    noise = torch.randn(2, 4, model.z_dim)
    fused, stepwise = model(x, noise=noise), model.forward_stepwise(x, noise=noise)
    torch.testing.assert_close(fused.log_px, stepwise.log_px, rtol=1e-5, atol=1e-5)
    samples, means = model.generate(2, 3)
    assert samples.shape == means.shape == (2, 3, x_dim)
    assert torch.isfinite(samples).all() and torch.isfinite(means).all()


def test_masked_weights_stay_zero_and_get_no_gradient():
    model = VRNN("rnn_gmm", x_dim=4, output="autoregressive", **TINY_MODEL)
    masked = [m for m in model.modules() if isinstance(m, MaskedLinear)]
    assert masked and all((m.weight[m.mask == 0] == 0).all() for m in masked)
    model(torch.randn(2, 3, 4)).log_px.sum().backward()
    assert all((m.weight.grad[m.mask == 0] == 0).all() for m in masked)


def test_the_independent_head_stays_the_default():
    model = VRNN("vrnn_gmm", x_dim=4, **TINY_MODEL)
    assert model.output_kind == "independent"
    assert not any(isinstance(m, MaskedLinear) for m in model.modules())


@pytest.mark.parametrize(
    "override,named",
    [("model.output=made", "model.output"), ("model.ar_hidden=0", "model.ar_hidden")],
)
def test_a_bad_output_key_is_a_config_error_naming_it(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(REPO / "conf" / "demo.yaml", [override])


def test_demo_trains_evaluates_and_samples_with_the_head(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "--config", str(REPO / "conf" / "demo.yaml"), f"out_dir={run}",
        f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_sequences=24",
        "data.synthetic_seconds=0.5", "data.seq_len=8", "data.batch_size=8",
        "model.output=autoregressive", "trainer.max_epochs=1", "trainer.max_steps=3",
        "trainer.limit_val_batches=1", "trainer.accelerator=cpu", "trainer.devices=1",
        "logger.wandb.mode=disabled", "sample.every_n_validations=0",
    ]  # fmt: skip
    assert fit.main(args) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval.json"
    assert evaluate.main(["--ckpt", str(ckpt), "--out", str(out), "eval.iw_samples=3"]) == 0
    result = json.loads(out.read_text())
    assert math.isfinite(result["elbo"]["per_sequence"])
    assert math.isfinite(result["iwae"]["per_sequence"])
    assert load_pretrained(ckpt).model.output_kind == "autoregressive"
    gen = tmp_path / "gen"
    assert sample.main(["--ckpt", str(ckpt), "--out", str(gen), "sample.n=1",
                        "sample.steps=3"]) == 0  # fmt: skip
    assert list(gen.glob("*.wav"))
