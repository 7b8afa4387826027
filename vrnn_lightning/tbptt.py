"""The LSTM state carried between the updates of truncated BPTT (Blizzard and Accent).

The authors' Blizzard training code (github.com/jych/nips2015_vrnn; their Accent script
likewise) stores the LSTM state at the end of a minibatch (``rnn_tm1``) and starts
the next one from it, with no gradient across updates, and resets it to zero every
``reset_freq`` = 4 updates; validation starts from zero. With data.streams row b
of consecutive batches is consecutive audio, so the state is the right context.

Here the reset is at every n-th batch of an epoch (each epoch starts its streams afresh, so
its first batch starts from zero too). The state of every rank goes into the checkpoint with
the batch it belongs to: a run resumed in mid-epoch carries on with the same states.
"""

from __future__ import annotations

import torch

from .model_parts import State


class CarriedState:
    def __init__(self, reset_every: int):
        self.reset_every = reset_every
        self.state: State | None = None  # detached (h, c), each (B, h_dim)
        self.next_batch: int | None = None  # the batch of the epoch that continues it

    @property
    def enabled(self) -> bool:
        return self.reset_every > 0

    def initial(self, batch_idx: int, batch_size: int, device) -> State | None:
        """The state batch ``batch_idx`` starts from; None: zero."""
        if not self.enabled or batch_idx % self.reset_every == 0 or self.state is None:
            return None
        if self.next_batch != batch_idx or self.state[0].shape[0] != batch_size:
            return None  # not the batch the state belongs to (e.g. after a skipped step)
        return tuple(t.to(device) for t in self.state)

    def keep(self, final_state: State, batch_idx: int) -> None:
        if self.enabled:
            self.state = tuple(t.detach() for t in final_state)
            self.next_batch = batch_idx + 1

    def forget(self) -> None:
        self.state = self.next_batch = None

    # ---- checkpoints: every rank's state, gathered (``all_gather`` is the module's) --------
    def state_dict(self, all_gather, world_size: int, zeros: torch.Tensor) -> dict:
        """``zeros``: (B, h_dim) on the module's device, this rank's stand-in without a state
        (every rank takes part in the gather)."""
        has = self.state is not None
        # float32 on every rank: under bf16-mixed a rank's carried state is bf16 while a rank
        # without one sends float32 zeros, and a gather needs one dtype
        h, c = (t.float() for t in (self.state if has else (zeros, zeros)))
        device = h.device
        # integers, not bools, through the gather (every backend takes them)
        valid = torch.tensor([int(has and self.next_batch is not None)], device=device)
        nxt = torch.tensor([self.next_batch if has else -1], device=device)
        parts = [all_gather(t) for t in (h, c, valid, nxt)]
        if world_size == 1:
            parts = [t.unsqueeze(0) for t in parts]
        h, c, valid, nxt = (t.cpu() for t in parts)
        return {"h": h, "c": c, "valid": valid.view(-1), "next_batch": nxt.view(-1)}

    def load_state_dict(self, saved: dict, rank: int, world_size: int) -> None:
        self.forget()
        if saved["h"].shape[0] != world_size or not bool(saved["valid"][rank]):
            return  # another number of ranks: the streams differ, start from zero
        self.state = (saved["h"][rank], saved["c"][rank])
        self.next_batch = int(saved["next_batch"][rank])
