"""Audio file I/O: read any soundfile-readable file as a mono waveform at a given rate; write WAVs.

soundfile (libsndfile) does all file I/O: WAV, FLAC, NIST SPHERE, OGG and, with libsndfile >= 1.1,
MP3. torchaudio is used only for DSP: the sinc kernel of ``torchaudio.functional.resample``,
built once per pair of rates and applied in one convolution per file (``resample``).

Sample type (the one place this rule lives; the store keeps what the reader returns):

* int16 when the file's samples have at most 16 bits of precision: 8/16-bit PCM, u-law,
  A-law, the ADPCM/DPCM/DWVW-12/16 codecs, 16-bit ALAC, and the lossy codecs MP3, Vorbis
  and Opus. This holds also when the file is downmixed or resampled: the float result is
  rounded and clipped back to int16 on the same scale, ``round(32768 * x)``, as the
  paper's own pipeline did (``ffmpeg -acodec pcm_s16le -ac 1 -ar 16000``, i.e. every
  source stored as 16-bit integers). Mono 16-bit PCM at the requested rate is read as is.
* float32 on soundfile's [-1, 1] scale (int16 / 32768) for finer samples: 24/32-bit PCM,
  float, double, 20/24/32-bit ALAC, 24-bit DWVW, and any subtype not listed in
  ``INT16_SUBTYPES``.

A consumer mixing both divides int16 by 32768 to put them on one scale.
"""

from __future__ import annotations

import math
import os
import re
import stat
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from vrnn_lightning.data.source import BadInput, Source

# torchaudio.functional.resample's defaults, which the window arithmetic below relies on
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99

# soundfile subtypes whose samples have at most 16 bits of precision: read as int16 (see above)
INT16_SUBTYPES = frozenset(
    {
        "PCM_S8",
        "PCM_U8",
        "PCM_16",
        "ULAW",
        "ALAW",
        "IMA_ADPCM",
        "MS_ADPCM",
        "GSM610",
        "VOX_ADPCM",
        "G721_32",
        "G723_24",
        "G723_40",
        "NMS_ADPCM_16",
        "NMS_ADPCM_24",
        "NMS_ADPCM_32",
        "DWVW_12",
        "DWVW_16",
        "DPCM_8",
        "DPCM_16",
        "ALAC_16",
        "MPEG_LAYER_I",
        "MPEG_LAYER_II",
        "MPEG_LAYER_III",
        "VORBIS",
        "OPUS",
    }
)
INT16_SCALE = 32768.0  # int16 sample value of amplitude 1.0
# Float samples may overshoot full scale (1.0) a little (inter-sample peaks, a gain change);
# beyond this the file is broken, and one such sample would set the statistics of a corpus
FLOAT_PEAK_LIMIT = 4.0
# sample rates a recording can have; a header outside them is corrupt (a 10 KB file claiming
# 1 Hz resamples to hours of audio)
RATE_RANGE = (1000, 768000)


def sample_dtype(subtype: str) -> np.dtype:
    """The dtype ``read_audio`` returns for a file of this soundfile subtype."""
    return np.dtype(np.int16 if subtype in INT16_SUBTYPES else np.float32)


@lru_cache(maxsize=8)
def _resampler(rate: int, sample_rate: int) -> tuple[torch.Tensor, int, int, int]:
    """torchaudio's sinc kernel for a pair of rates, built once (building it costs more than
    resampling a 0.5 s sequence): (kernel, width, input block, output block)."""
    r = torchaudio.transforms.Resample(rate, sample_rate, dtype=torch.float32)
    return r.kernel, r.width, rate // r.gcd, sample_rate // r.gcd


def resample(wave: torch.Tensor, rate: int, sample_rate: int) -> torch.Tensor:
    """``torchaudio.functional.resample(wave, rate, sample_rate)`` of a 1-D float tensor, with
    the cached kernel and without the per-call overhead (the same padding, convolution and
    output length, so the same values)."""
    kernel, width, ri, ro = _resampler(rate, sample_rate)
    n = wave.shape[-1]
    x = torch.nn.functional.pad(wave.view(1, 1, n), (width, width + ri))
    y = torch.nn.functional.conv1d(x, kernel, stride=ri)  # (1, ro, blocks)
    return y[0].t().reshape(-1)[: -(-ro * n // ri)]


def to_int16(wave: torch.Tensor) -> np.ndarray:
    """Float samples on the [-1, 1] scale -> int16, rounded (half to even) and clipped."""
    return wave.mul(INT16_SCALE).round_().clamp_(-32768, 32767).to(torch.int16).numpy()


# libsndfile's header log of a WAV whose data chunk runs past the end: "data : N (should be M)"
_WAV_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)  # written by streaming encoders that never seek back


def _open(path: Path) -> sf.SoundFile:
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{path}: not a file")
    if st.st_size == 0:
        raise BadInput(f"{path}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(path)
    except (sf.SoundFileError, OSError) as err:
        raise BadInput(f"{path}: not a readable audio file ({err})") from None
    # libsndfile plays a cut-off WAV up to where it ends; a cut-off file is a corrupt copy
    m = _WAV_DATA_LOG.search(f.extra_info) if f.format in ("WAV", "WAVEX") else None
    if m and int(m.group(1)) not in _PLACEHOLDER_SIZES and int(m.group(1)) > int(m.group(2)):
        f.close()
        raise BadInput(
            f"{path}: truncated: its header promises {m.group(1)} bytes of audio, "
            f"the file holds {m.group(2)}"
        )
    if not RATE_RANGE[0] <= f.samplerate <= RATE_RANGE[1]:
        f.close()
        raise BadInput(
            f"{path}: implausible sample rate {f.samplerate} Hz in its header "
            f"(expected {RATE_RANGE[0]} to {RATE_RANGE[1]} Hz)"
        )
    return f


def _resampled_length(frames: int, rate: int, sample_rate: int) -> int:
    """Samples that resampling ``frames`` samples from ``rate`` to ``sample_rate`` yields."""
    return -(-frames * sample_rate // rate)  # ceil, as torchaudio does


def audio_length(path: str | Path, sample_rate: int) -> int:
    """Length in samples at ``sample_rate`` of the file's audio, from its header (cheap)."""
    with _open(Path(path)) as f:
        return _resampled_length(f.frames, f.samplerate, sample_rate)


def _input_window(start: int, stop: int | None, frames: int, rate: int, sample_rate: int):
    """The input samples [a, b) whose resampling covers output samples [start, stop) exactly.

    The resampler maps every block of ``ri`` input samples onto ``ro`` output samples, and
    an output block depends on input within ``width + ri`` samples of it. A window that
    starts on a block boundary and is padded by that much resamples to exactly the same
    values as the whole file, so a 0.5 s sequence never needs the whole file decoded.
    Returns (a, b, offset): output sample ``offset`` is the window's first output sample.
    """
    g = math.gcd(rate, sample_rate)
    ri, ro = rate // g, sample_rate // g
    width = math.ceil(_LOWPASS_WIDTH * ri / (min(ri, ro) * _ROLLOFF))
    pad_blocks = -(-(width + ri) // ri)
    first_block = max(start // ro - pad_blocks, 0)
    a = first_block * ri
    b = frames if stop is None else min(frames, (-(-stop // ro) + pad_blocks) * ri)
    return a, b, first_block * ro


def read_audio(
    path: str | Path,
    sample_rate: int,
    max_samples: int | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> np.ndarray:
    """The file at ``path`` as a 1-D waveform at ``sample_rate``: samples [start, stop).

    Multi-channel audio is averaged to mono, another rate is resampled with torchaudio,
    and the result is cut to its first ``max_samples`` samples. ``start``/``stop`` count
    samples at ``sample_rate``; only the part of the file they need is decoded.
    Raises BadInput naming the file and the problem for anything unusable.
    """
    path = Path(path)
    if max_samples is not None:
        stop = max_samples if stop is None else min(stop, max_samples)
    with _open(path) as f:
        rate, channels, frames = f.samplerate, f.channels, f.frames
        if frames <= 0:
            raise BadInput(f"{path}: no audio samples")
        exact = rate == sample_rate
        as_int16 = f.subtype in INT16_SUBTYPES
        direct = exact and channels == 1 and f.subtype == "PCM_16"  # nothing to compute
        if exact:
            a, b, offset = start, frames if stop is None else min(stop, frames), start
        else:
            a, b, offset = _input_window(start, stop, frames, rate, sample_rate)
        if b <= a:
            raise BadInput(
                f"{path}: no samples in [{start}, {stop}) (it has {frames} at {rate} Hz)"
            )
        try:
            f.seek(a)
            data = f.read(b - a, dtype="int16" if direct else "float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as err:
            raise BadInput(f"{path}: cannot decode audio ({err})") from None
    if data.shape[0] == 0:
        raise BadInput(f"{path}: no audio samples could be decoded")
    lo, hi = start - offset, None if stop is None else stop - offset  # the requested range
    if direct:
        return np.ascontiguousarray(data[lo:hi, 0])
    wave = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise BadInput(f"{path}: non-finite samples (NaN or inf)")
    peak = float(np.abs(wave).max())
    if peak > FLOAT_PEAK_LIMIT:
        raise BadInput(
            f"{path}: samples of amplitude {peak:.3g}, far beyond full scale 1.0 "
            f"(at most {FLOAT_PEAK_LIMIT} is accepted)"
        )
    wave = torch.from_numpy(np.ascontiguousarray(wave))
    if not exact:
        with torch.no_grad():
            wave = resample(wave, rate, sample_rate)
    wave = wave[lo:hi]
    return to_int16(wave) if as_int16 else np.ascontiguousarray(wave.numpy())


# A process decodes a file once for all its sequences when it has at most this many samples
# (1 h at 16 kHz, 230 MB); longer files are decoded sequence by sequence through a window.
CACHE_MAX_SAMPLES = 3600 * 16000


# keyed by (path, sample_rate, size, mtime_ns): a rewritten file is read again
@lru_cache(maxsize=1)
def _whole_file(path: str, sample_rate: int, size: int, mtime_ns: int) -> np.ndarray:
    return read_audio(path, sample_rate)


@lru_cache(maxsize=64)
def _length(path: str, sample_rate: int, size: int, mtime_ns: int) -> int:
    return audio_length(path, sample_rate)


def read_source(
    source: Source,
    sample_rate: int,
    min_samples: int,
    max_samples: int | None = None,
) -> np.ndarray:
    """A corpus source's waveform; BadInput when it has fewer than ``min_samples`` samples.

    The sequences of one file come in a row, so a range of a file is cut from the whole
    file decoded once (and kept until another file is read) rather than decoded on its own.
    """
    if source.path is None:
        raise BadInput(f"{source.name}: an audio source needs a file path")
    start, stop = source.start, source.stop
    if max_samples is not None:
        stop = max_samples if stop is None else min(stop, max_samples)
    # one stat and one header read per file, not per sequence (Blizzard: ~2,000 sequences a file)
    key = None
    if source.stop is not None:
        try:
            st = os.stat(source.path)
            key = (str(source.path), sample_rate, st.st_size, st.st_mtime_ns)
        except OSError:
            pass  # read_audio says what is wrong with it
    if key is not None and _length(*key) <= CACHE_MAX_SAMPLES:
        wave = _whole_file(*key)[start:stop].copy()  # a copy: the caller may modify it
    else:
        wave = read_audio(source.path, sample_rate, start=start, stop=stop)
    if len(wave) < min_samples:
        raise BadInput(
            f"{source.path}: too short: {len(wave)} samples at {sample_rate} Hz, "
            f"need at least {min_samples}"
        )
    return wave


def write_wav(path: str | Path, waveform, sample_rate: int, comment: str | None = None) -> Path:
    """Write a mono (T,) or multi-channel (T, C) waveform as a 16-bit PCM WAV.

    Integer input is taken as int16 sample values; float input as the [-1, 1] scale and
    clipped to it (generated audio can overshoot). ``comment`` goes into the WAV's INFO
    chunk. Creates the parent folder.
    """
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    wave = np.asarray(waveform)
    if wave.ndim not in (1, 2) or wave.shape[0] == 0:
        raise ValueError(
            f"write_wav: expected a non-empty (T,) or (T, C) waveform, not {wave.shape}"
        )
    if np.issubdtype(wave.dtype, np.integer):
        wave = np.clip(wave, -32768, 32767).astype(np.int16)
    else:
        if not np.isfinite(wave).all():
            raise ValueError(f"write_wav: {path}: waveform has non-finite samples")
        wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(
        path,
        "w",
        samplerate=sample_rate,
        channels=1 if wave.ndim == 1 else wave.shape[1],
        format="WAV",
        subtype="PCM_16",
    ) as f:
        if comment:
            f.comment = comment
        f.write(wave)
    return path
