"""Training on parallel streams of consecutive windows, for truncated BPTT with carried state.

The original Blizzard and Accent code (``fetch_blizzard_tbptt``) concatenates the training
audio, splits it into 128 equal streams and feeds row b of consecutive minibatches with
consecutive 0.5 s windows of stream b, so the LSTM state at the end of one update can start
the next. Here the training split's frames, in store order, form one signal; it is cut into
``world_size * batch_size`` equal contiguous streams (the tail that does not fill a whole
window in every stream is left out), and batch j of rank r holds window j of streams
r * batch_size ... (r + 1) * batch_size - 1, in that order, every epoch the same.

The plan is the global order, interleaved so that rank r's share of it (keys r, r + W, ...:
data/resumable.py) is exactly its own streams; with one process it is the plain order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vrnn_lightning.data.store import FrameStore

Span = tuple[int, int]  # (first frame in the split's concatenated frames, number of frames)


class StreamSampler(Sampler[Span]):
    """Spans of ``seq_len`` frames; every ``batch_size`` consecutive spans of a rank are one
    window of each of that rank's streams. A run resumed in mid-epoch carries on where the
    killed one stopped: its loader skips the batches already trained on (data/resumable.py)."""

    def __init__(self, n_frames: int, seq_len: int, batch_size: int, world_size: int = 1):
        self.seq_len, self.batch_size, self.world_size = seq_len, batch_size, world_size
        self.n_streams = batch_size * world_size
        self.windows = n_frames // (self.n_streams * seq_len)  # batches per epoch and rank
        if self.windows == 0:
            raise ValueError(
                f"data.streams: the training split has {n_frames} frames, fewer than one window "
                f"of {seq_len} frames for each of {self.n_streams} streams (batch_size x ranks)"
            )
        self.stream_len = self.windows * seq_len

    def __len__(self) -> int:
        return self.windows * self.n_streams

    def plan(self, epoch: int = 0) -> np.ndarray:
        """(len(self), 2) spans, batch after batch, interleaved over the ranks; the same
        every epoch (each epoch starts its streams afresh)."""
        j = np.arange(self.windows)[:, None, None]  # batch = window
        b = np.arange(self.batch_size)[None, :, None]  # row within a rank's batch
        r = np.arange(self.world_size)[None, None, :]  # rank
        stream = r * self.batch_size + b
        start = stream * self.stream_len + j * self.seq_len
        start = start.reshape(-1)
        return np.stack([start, np.full_like(start, self.seq_len)], axis=1)

    def __iter__(self) -> Iterator[Span]:
        return (tuple(int(v) for v in span) for span in self.plan())


class StreamDataset(Dataset):
    """Normalised frames of a span of the split's concatenated frames; ``index`` is the
    sequence that holds its first frame."""

    def __init__(self, store: FrameStore):
        self.store = store

    def __len__(self) -> int:
        return self.store.n_frames

    def __getitem__(self, span: Span) -> dict:
        first, length = span
        i = int(np.searchsorted(self.store.offsets, first, side="right")) - 1
        x = self.store.normalise(self.store.span(first, first + length))
        return {"x": torch.from_numpy(x), "index": i}
