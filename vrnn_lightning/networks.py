"""Deterministic building blocks: the ReLU MLPs, the paper's initialisation and max-norm."""

from __future__ import annotations

import torch
from torch import nn

# The original code (cle) initialises every feed-forward weight and the LSTM's input weights
# from U(-0.08, 0.08) and caps each unit's incoming weights at this L2 norm after every update.
PAPER_INIT_RANGE = 0.08
PAPER_MAX_NORM = 1.9365


class BlockLinear(nn.Linear):
    """A Linear layer over concatenated inputs that remembers where each input's block starts.

    The paper's layers have one weight matrix per input ("parent"); the max-norm constraint
    is applied to each separately. One Linear over the concatenation is the same map and
    faster; ``in_blocks`` keeps the per-parent split for ``apply_max_norm``.
    """

    def __init__(self, in_blocks: tuple[int, ...], out_features: int):
        super().__init__(sum(in_blocks), out_features)
        self.in_blocks = tuple(in_blocks)


def mlp(in_blocks: int | tuple[int, ...], width: int, layers: int) -> nn.Sequential:
    """``layers`` hidden layers of ``width`` ReLU units (the paper: 4; IAM-OnDB: 1)."""
    if layers < 1:
        raise ValueError(f"model.mlp_layers must be >= 1, got {layers}")
    blocks = (in_blocks,) if isinstance(in_blocks, int) else tuple(in_blocks)
    modules: list[nn.Module] = [BlockLinear(blocks, width), nn.ReLU()]
    for _ in range(layers - 1):
        modules += [BlockLinear((width,), width), nn.ReLU()]
    return nn.Sequential(*modules)


def paper_init_(module: nn.Module, std_bias: float = 0.6) -> None:
    """The original code's initialisation, in place.

    Feed-forward and LSTM input weights ~ U(-0.08, 0.08); each LSTM gate's recurrent block
    orthogonal; all biases 0 (forget gate included), except scale heads (``is_scale_head``)
    whose bias starts at ``std_bias`` so that softplus(bias) is about 1.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.uniform_(sub.weight, -PAPER_INIT_RANGE, PAPER_INIT_RANGE)
            nn.init.constant_(sub.bias, std_bias if getattr(sub, "is_scale_head", False) else 0.0)
        elif isinstance(sub, nn.LSTM):
            for name, param in sub.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.uniform_(param, -PAPER_INIT_RANGE, PAPER_INIT_RANGE)
                elif name.startswith("weight_hh"):
                    for block in param.data.chunk(4, dim=0):
                        nn.init.orthogonal_(block)
                else:
                    nn.init.zeros_(param)


def scale_head(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer whose output goes through softplus to become a standard deviation."""
    layer = nn.Linear(in_features, out_features)
    layer.is_scale_head = True
    return layer


def _capped_blocks(module: nn.Module):
    """Every weight block max-norm applies to: each feed-forward weight and the LSTM's input
    weights, split per input as the original code does (one matrix per parent); never
    recurrent weights or biases. torch stores (out, in): a row of a block is one unit's
    incoming weights from one input ("a column" in Theano's W)."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            blocks = list(getattr(sub, "in_blocks", (sub.in_features,)))
            yield from sub.weight.split(blocks, dim=1)
        elif isinstance(sub, nn.LSTM):
            blocks = list(getattr(sub, "in_blocks", (sub.input_size,)))
            for name, param in sub.named_parameters():
                if name.startswith("weight_ih"):
                    yield from param.split(blocks, dim=1)


@torch.no_grad()
def apply_max_norm(module: nn.Module, max_norm: float = PAPER_MAX_NORM) -> None:
    """Rescale each unit's incoming weights from each input to an L2 norm of at most max_norm.
    Call after each optimiser step."""
    for block in _capped_blocks(module):
        norms = block.norm(dim=1, keepdim=True)
        block.mul_(torch.clamp(max_norm / norms, max=1.0))


@torch.no_grad()
def max_norm_usage(module: nn.Module, max_norm: float = PAPER_MAX_NORM) -> tuple[float, float]:
    """(largest incoming-weight norm / max_norm, fraction of rows at the cap): whether the
    constraint binds in a trained model (1.0 and > 0: it does)."""
    norms = torch.cat([block.norm(dim=1) for block in _capped_blocks(module)])
    return (norms.max() / max_norm).item(), (norms >= max_norm * (1 - 1e-4)).float().mean().item()


class RecurrentWeightGrad(torch.autograd.Function):
    """Zeros for the per-step products of a recurrent loop, carrying their weights' gradients.

    Inside the loop the products h_{t-1} W^T and fz_t V^T use detached weights, and this
    function's zeros (T, B, out) are added to the sum that h_{t-1} W^T enters (and that
    fz_t V^T enters on V's rows). Its backward so receives d loss / d(h_{t-1} W^T) for every
    step at once and computes the weight gradients as two large matmuls over all T * B rows,
    instead of autograd's one thin (B-row) matmul per step and weight, accumulated T times.

    ``inputs_w`` and ``inputs_v`` are the loop's lists of h_{t-1} and fz_t, filled after this
    function runs and complete by the time backward runs. They must hold **detached**
    tensors (``t.detach()``: the same storage, no graph): a tensor with a ``grad_fn`` kept on
    ``ctx`` closes a reference cycle through the C++ autograd graph (ctx -> h -> its graph ->
    this node -> ctx) that Python's garbage collector cannot see, and every training step's
    activations would stay alive forever. V's output rows are the first of W's.
    """

    @staticmethod
    def forward(ctx, w, v, inputs_w: list, inputs_v: list, shape: tuple, dtype: torch.dtype):
        ctx.inputs_w, ctx.inputs_v, ctx.v_rows = inputs_w, inputs_v, v.shape[0]
        return w.new_zeros((), dtype=dtype).expand(shape)

    @staticmethod
    def backward(ctx, grad):
        g = grad.flatten(0, 1)  # (T * B, out)
        h = torch.stack(ctx.inputs_w).flatten(0, 1).to(g.dtype)
        fz = torch.stack(ctx.inputs_v).flatten(0, 1).to(g.dtype)
        return g.t() @ h, g[:, : ctx.v_rows].t() @ fz, None, None, None, None
