"""Corpus readers and split rules, on tiny fixtures written in each corpus's real on-disk
format (NIST SPHERE, FLAC, MP3, IAM XML, GW text), plus the real FSDD and GW online data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import FSDD_DIR, GW_DIR

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data import audio
from vrnn_lightning.data.audio import read_audio, write_wav
from vrnn_lightning.data.corpora import NAMES, get_corpus
from vrnn_lightning.data.corpora.splits import split_counts, split_groups, split_shuffled
from vrnn_lightning.data.source import BadInput, CorpusError, Source
from vrnn_lightning.data.strokes import points_to_steps, split_strokes, steps_to_points

OUR_CORPORA = tuple(name for name in NAMES if not name.startswith("synthetic"))
HAS_MP3 = "MP3" in sf.available_formats()
needs_mp3 = pytest.mark.skipif(
    not HAS_MP3, reason="this libsndfile cannot write MP3 (needs >= 1.1)"
)


def noise(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
    return x[:, 0] if channels == 1 else x


def write(path: Path, data, rate: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, **kwargs)
    return path


def config(root, **kwargs) -> DataConfig:
    return DataConfig(root=None if root is None else str(root), **kwargs)


def split_names(splits) -> dict[str, list[str]]:
    return {k: [s.name for s in v] for k, v in splits.items()}


def q16(x) -> np.ndarray:
    """The 16-bit rule of vrnn_lightning.data.audio, written independently: round(32768 x)."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------- audio reading


def test_read_audio_keeps_int16_for_mono_16bit_at_the_rate(tmp_path):
    for fmt in ("WAV", "FLAC"):
        path = write(tmp_path / f"a.{fmt.lower()}", noise(3000), 16000, format=fmt)
        wave = read_audio(path, 16000)
        assert wave.dtype == np.int16
        np.testing.assert_array_equal(wave, sf.read(path, dtype="int16")[0])


def test_read_audio_downmixes_and_resamples_stereo_16bit_to_int16(tmp_path):
    # as the paper's ffmpeg -acodec pcm_s16le: a 16-bit source stays 16-bit, round(32768 x)
    path = write(tmp_path / "s.wav", noise(22050, channels=2), 22050, subtype="PCM_16")
    wave = read_audio(path, 16000)
    stereo = sf.read(path, dtype="float32")[0]
    expected = AF.resample(torch.from_numpy(stereo.mean(axis=1)), 22050, 16000).numpy()
    assert wave.dtype == np.int16 and wave.shape == (16000,)
    np.testing.assert_array_equal(wave, q16(expected))
    # a stereo file at the right rate is averaged, and rounded back to int16
    path = write(tmp_path / "s16.wav", noise(500, channels=2), 16000, subtype="PCM_16")
    pair = sf.read(path, dtype="int16")[0].astype(np.float64)
    assert read_audio(path, 16000).dtype == np.int16
    np.testing.assert_array_equal(read_audio(path, 16000), np.rint(pair.mean(axis=1)))
    # 8 kHz 16-bit mono (FSDD) resampled to 16 kHz: int16 too
    path = write(tmp_path / "m8.wav", noise(4000), 8000, subtype="PCM_16")
    mono = torch.from_numpy(sf.read(path, dtype="float32")[0])
    np.testing.assert_array_equal(
        read_audio(path, 16000), q16(AF.resample(mono, 8000, 16000).numpy())
    )


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "FLOAT"])
def test_read_audio_keeps_finer_than_16_bit_sources_float32(tmp_path, subtype):
    path = write(tmp_path / "s.wav", noise(4410, channels=2), 44100, subtype=subtype)
    stereo = sf.read(path, dtype="float32")[0]
    expected = AF.resample(torch.from_numpy(stereo.mean(axis=1)), 44100, 16000).numpy()
    wave = read_audio(path, 16000)
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave, expected, atol=1e-6)
    mono = write(tmp_path / "m.wav", noise(300), 16000, subtype=subtype)
    assert read_audio(mono, 16000).dtype == np.float32


@pytest.mark.parametrize("rate", [8000, 44100])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_read_audio_range_equals_the_whole_file_resampled(tmp_path, rate, subtype):
    # sequences of a long file are decoded through a window: same values as the whole file
    # (to float rounding: 1e-6, or one step of int16 where that rounding meets a .5)
    path = write(tmp_path / "long.flac", noise(rate * 2, channels=2), rate, subtype=subtype)
    whole = read_audio(path, 16000)
    assert whole.dtype == (np.int16 if subtype == "PCM_16" else np.float32)
    atol = 1 if subtype == "PCM_16" else 1e-6
    for start in (0, 8000, 12345, 24000):
        part = read_audio(path, 16000, start=start, stop=start + 8000)
        assert part.dtype == whole.dtype
        np.testing.assert_allclose(part, whole[start : start + 8000], atol=atol)
    np.testing.assert_allclose(read_audio(path, 16000, max_samples=100), whole[:100], atol=atol)


@needs_mp3
def test_read_audio_mp3_whole_and_range(tmp_path):
    path = write(tmp_path / "a.mp3", noise(24000), 16000, format="MP3")
    expected = q16(sf.read(path, dtype="float32")[0])  # MP3 is stored 16-bit, as ffmpeg did
    whole = read_audio(path, 16000)
    assert whole.dtype == np.int16
    np.testing.assert_array_equal(whole, expected)
    part = read_audio(path, 16000, start=8000, stop=16000)  # decoded after a seek
    np.testing.assert_allclose(part, expected[8000:16000], atol=1)


def _garbage(p):
    p.write_bytes(np.random.default_rng(0).bytes(4000))


def _truncated(p):
    write(p, noise(1000), 16000, subtype="PCM_16")
    p.write_bytes(p.read_bytes()[:30])  # cut inside the header


def _cut_in_data(p):
    write(p, noise(1000), 16000, subtype="PCM_16")
    p.write_bytes(p.read_bytes()[:1000])  # a half-copied file: the header promises 2000 bytes


def _empty(p):
    p.write_bytes(b"")


def _nan(p):
    x = noise(1000)
    x[10] = np.nan
    write(p, x, 16000, subtype="FLOAT")


def _no_samples(p):
    write(p, np.zeros(0, np.float32), 16000, subtype="PCM_16")


@pytest.mark.parametrize(
    "make, reason",
    [
        (_garbage, "not a readable audio file"),
        (_truncated, "not a readable audio file"),
        (_cut_in_data, "truncated: its header promises 2000 bytes of audio, the file holds 956"),
        (_empty, "empty file"),
        (_nan, "non-finite"),
        (_no_samples, "no audio samples"),
    ],
)
def test_read_audio_bad_input(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(BadInput, match=reason) as err:
        read_audio(path, 16000)
    assert "bad.wav" in str(err.value)


def test_corpus_read_rejects_a_file_shorter_than_one_frame(tmp_path):
    write(tmp_path / "0_ann_0.wav", noise(150), 16000, subtype="PCM_16")
    cfg = config(tmp_path, dataset="audio_folder", frame_size=200)
    corpus = get_corpus("audio_folder")
    (source,) = corpus.find_sources(cfg)["train"]
    with pytest.raises(BadInput, match="too short: 150 samples"):
        corpus.read(source, cfg)


def test_write_wav_round_trip(tmp_path):
    x = noise(1000)
    path = write_wav(tmp_path / "out" / "x.wav", torch.from_numpy(x * 3), 8000)  # overshoots
    back, rate = sf.read(path, dtype="float32")
    assert rate == 8000 and sf.info(path).subtype == "PCM_16"
    np.testing.assert_allclose(back, np.clip(x * 3, -1, 1), atol=1 / 32768)
    ints = (x * 20000).astype(np.int16)
    np.testing.assert_array_equal(sf.read(write_wav(path, ints, 8000), dtype="int16")[0], ints)
    with pytest.raises(ValueError, match="non-finite"):
        write_wav(path, np.array([0.0, np.inf]), 8000)


# ---------------------------------------------------------------- strokes


def test_points_to_steps_and_back():
    points = np.array([[10, 20, 0], [12, 25, 0], [15, 27, 1], [30, 20, 0], [31, 22, 1]])
    steps = points_to_steps(points, flip_y=True)
    expected = [[0, 2, -5], [1, 3, -2], [0, 15, 7], [1, 1, -2]]
    assert steps.dtype == np.float32
    np.testing.assert_array_equal(steps, expected)
    back = steps_to_points(steps, origin=(10, 20), flip_y=True)
    np.testing.assert_array_equal(back[1:], points[1:])
    strokes = split_strokes(back)
    assert [len(s) for s in strokes] == [3, 2]
    np.testing.assert_array_equal(strokes[1], [[30, 20], [31, 22]])


@pytest.mark.parametrize(
    "points, reason",
    [
        ([[1, 2, 1]], "at least 2"),
        ([[1, 2, 0], [np.nan, 2, 1]], "non-finite"),
        ([[1, 2, 0], [3, 2, 2]], "pen values"),
        ([[1, 2], [3, 4]], "shape"),
    ],
)
def test_points_to_steps_rejects_bad_trajectories(points, reason):
    with pytest.raises(BadInput, match=reason):
        points_to_steps(np.array(points, dtype=float), name="line-7")


# ---------------------------------------------------------------- split helpers


def test_split_counts():
    assert split_counts(4620, 0.05, 0.0) == (231, 0)
    assert split_counts(100, 0.05, 0.05) == (5, 5)
    assert split_counts(5, 0.05, 0.05) == (1, 1)  # at least one each from 3 items
    assert split_counts(2, 0.05, 0.05) == (0, 0)
    assert split_counts(3, 0.4, 0.4) == (1, 1)  # train is never emptied
    with pytest.raises(CorpusError, match="data.valid_fraction"):
        split_counts(10, 0.6, 0.5)
    with pytest.raises(CorpusError, match="data.test_fraction"):
        split_counts(10, 0.1, -0.1)


def test_split_shuffled_and_groups_are_seeded_partitions():
    items = [f"{speaker}_{i}" for speaker in "abcdefghij" for i in range(7)]
    one = split_shuffled(items, 0.1, 0.1, seed=3)
    assert one == split_shuffled(items, 0.1, 0.1, seed=3)
    assert one != split_shuffled(items, 0.1, 0.1, seed=4)
    assert sorted(sum(one.values(), [])) == sorted(items)
    assert [len(one[k]) for k in ("train", "valid", "test")] == [56, 7, 7]
    groups = split_groups(items, lambda s: s[0], 0.1, 0.1, seed=3)
    speakers = {k: {s[0] for s in v} for k, v in groups.items()}
    assert [len(speakers[k]) for k in ("train", "valid", "test")] == [8, 1, 1]
    assert not (speakers["train"] & speakers["valid"] or speakers["train"] & speakers["test"])
    assert sorted(sum(groups.values(), [])) == sorted(items)


# ---------------------------------------------------------------- missing or empty roots


@pytest.mark.parametrize("name", OUR_CORPORA)
def test_missing_or_empty_root_is_a_corpus_error(tmp_path, name):
    corpus = get_corpus(name)
    with pytest.raises(CorpusError, match="data.root is not set") as err:
        corpus.find_sources(config(None, dataset=name))
    assert name in str(err.value)
    with pytest.raises(CorpusError, match="data.root '.*nowhere' is not a folder"):
        corpus.find_sources(config(tmp_path / "nowhere", dataset=name))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("nothing here")
    with pytest.raises(CorpusError, match="data.root '.*empty'.*expects"):
        corpus.find_sources(config(tmp_path / "empty", dataset=name))


# ---------------------------------------------------------------- TIMIT


def _sphere(path: Path, n: int, seed: int) -> Path:
    return write(path, noise(n, seed=seed), 16000, format="NIST", subtype="PCM_16")


def test_timit_layout_split_and_read(tmp_path):
    root = tmp_path / "timit"
    # LDC layout with the letter case of different copies mixed; 40 training files
    train_dirs = ["TRAIN/DR1/FCJF0", "TRAIN/DR1/MDAB0", "TRAIN/dr2/faem0", "TRAIN/Dr2/MWAR0"]
    for d, folder in enumerate(train_dirs):
        for i in range(10):
            name = f"SX{i}.WAV" if d != 2 else f"sx{i}.wav"
            _sphere(root / folder / name, 400 + i, seed=10 * d + i)
    for i in range(6):
        _sphere(root / "test/DR3/MDAC0" / f"SI{i}.WAV", 500, seed=100 + i)
    # a redistribution's RIFF copy of one utterance, and files outside the layout
    write(root / "test/DR3/MDAC0/SI0.WAV.wav", noise(500), 16000)
    _sphere(root / "TRAIN/DR1/stray.wav", 400, seed=0)
    (root / "TRAIN/DR1/FCJF0/SX1.PHN").write_text("0 400 h#\n")

    cfg = config(root, dataset="timit")
    splits = get_corpus("timit").find_sources(cfg)
    names = split_names(splits)
    assert [len(names[k]) for k in ("train", "valid", "test")] == [38, 2, 6]
    assert names["test"] == [f"test/DR3/MDAC0/SI{i}.WAV" for i in range(6)]
    # the rule: sorted (case-insensitively), shuffled with the seed, the first 5% to valid
    train_files = sorted(names["train"] + names["valid"], key=str.lower)
    random.Random(1234).shuffle(train_files)
    assert sorted(names["valid"]) == sorted(train_files[:2])
    assert splits["valid"][0].speaker in {"FCJF0", "MDAB0", "FAEM0", "MWAR0"}
    assert split_names(get_corpus("timit").find_sources(config(root, split_seed=7))) != names

    source = splits["test"][2]
    assert sf.info(source.path).format == "NIST"
    wave = get_corpus("timit").read(source, cfg)
    assert wave.dtype == np.int16
    np.testing.assert_array_equal(wave, sf.read(source.path, dtype="int16")[0])


def test_timit_full_size_split_counts(tmp_path):
    # find_sources only lists files: empty placeholders in the real layout give the real counts
    # (here inside the CD's TIMIT/ folder, which data.root may hold instead of TRAIN/ and TEST/)
    for split, speakers in (("TRAIN", 462), ("TEST", 168)):
        for s in range(speakers):
            folder = tmp_path / "TIMIT" / split / f"DR{s % 8 + 1}" / f"M{s:04d}"
            folder.mkdir(parents=True)
            for i in range(10):
                (folder / f"S{i}.WAV").touch()
    splits = get_corpus("timit").find_sources(config(tmp_path, dataset="timit"))
    assert {k: len(v) for k, v in splits.items()} == {"train": 4389, "valid": 231, "test": 1680}
    assert splits["test"][0].name == "TIMIT/TEST/DR1/M0000/S0.WAV"


# ---------------------------------------------------------------- Blizzard and Accent


@pytest.mark.parametrize("cache", [True, False])
def test_blizzard_cuts_half_second_sequences_and_splits_by_position(tmp_path, monkeypatch, cache):
    if not cache:  # every sequence decoded through its own window, as for very long files
        monkeypatch.setattr(audio, "CACHE_MAX_SAMPLES", 0)
    root = tmp_path / "blizzard"
    lengths = {"a/01.flac": 20000, "a/02.wav": 8000 * 3 + 100, "b/03.wav": 8000 * 13}
    for i, (name, n) in enumerate(lengths.items()):
        write(root / name, noise(n, seed=i), 16000, subtype="PCM_16")
    write(root / "b/04.wav", noise(int(44100 * 1.2), channels=2), 44100)  # 19200 at 16 kHz
    write(root / "c/short.wav", noise(4000), 16000, subtype="PCM_16")
    if HAS_MP3:
        write(root / "c/05.mp3", noise(16000), 16000, format="MP3")

    cfg = config(root, dataset="blizzard")
    corpus = get_corpus("blizzard")
    splits = corpus.find_sources(cfg)
    ordered = splits["train"] + splits["valid"] + splits["test"]
    sequences = [s for s in ordered if s.stop is not None]
    n = 2 + 3 + 13 + 2 + (2 if HAS_MP3 else 0)
    assert len(sequences) == n
    assert [len(splits["valid"]), len(splits["test"])] == list(split_counts(n + 1, 0.05, 0.05))
    # positions follow the sorted files, sequence after sequence
    assert ordered[0].name == "a/01.flac[0:8000]" and ordered[1].name == "a/01.flac[8000:16000]"
    assert [s.name for s in ordered] == sorted(
        (s.name for s in ordered), key=lambda m: (m.split("[")[0], len(m), m)
    )
    # a file shorter than 0.5 s is kept whole, and read says why it is unusable
    (short,) = [s for s in ordered if s.stop is None]
    with pytest.raises(BadInput, match="too short: 4000 samples"):
        corpus.read(short, cfg)
    for source in sequences:
        wave = corpus.read(source, cfg)
        assert wave.shape == (8000,)
        whole = read_audio(source.path, 16000)
        np.testing.assert_allclose(wave, whole[source.start : source.stop], atol=1)
        assert wave.dtype == np.int16  # 16-bit sources, resampled (b/04) or MP3 (c/05) too


def test_accent_splits_by_speaker(tmp_path):
    ext, fmt = ("mp3", "MP3") if HAS_MP3 else ("flac", "FLAC")
    speakers = [f"{lang}{i}" for lang in ("english", "spanish", "mandarin") for i in (1, 2)]
    for i, speaker in enumerate(speakers):
        write(tmp_path / f"{speaker}.{ext}", noise(17000, seed=i), 16000, format=fmt)
    cfg = config(tmp_path, dataset="accent")
    corpus = get_corpus("accent")
    splits = corpus.find_sources(cfg)
    by_split = {k: {s.speaker for s in v} for k, v in splits.items()}
    assert [len(by_split[k]) for k in ("train", "valid", "test")] == [4, 1, 1]
    assert set().union(*by_split.values()) == set(speakers)
    assert all(len(v) == 2 * len(by_split[k]) for k, v in splits.items())  # 2 sequences each
    source = splits["test"][1]
    assert source.name.endswith(f".{ext}[8000:16000]") and source.speaker in source.name
    expected = q16(sf.read(source.path, dtype="float32")[0][8000:16000])
    wave = corpus.read(source, cfg)
    assert wave.dtype == np.int16
    np.testing.assert_allclose(wave, expected, atol=1)


# ---------------------------------------------------------------- Onomatopoeia and folders


def test_onomatopoeia_truncates_to_50000_and_shuffles_by_seed(tmp_path):
    for i in range(20):
        write(tmp_path / f"actor{i % 3}" / f"clip{i:02d}.flac", noise(300 + i), 16000)
    write(tmp_path / "actor0/long.flac", noise(60000), 16000)
    corpus = get_corpus("onomatopoeia")
    cfg = config(tmp_path, dataset="onomatopoeia")
    splits = corpus.find_sources(cfg)
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [19, 1, 1]
    assert split_names(corpus.find_sources(cfg)) == split_names(splits)
    assert len({s.name for s in sum(splits.values(), [])}) == 21
    assert split_names(corpus.find_sources(config(tmp_path, split_seed=5))) != split_names(splits)
    long = Source("actor0/long.flac", tmp_path / "actor0/long.flac")
    assert corpus.read(long, cfg).shape == (50000,)
    assert corpus.read(long, config(tmp_path, max_samples=1000)).shape == (1000,)


def test_audio_folder_speaker_pattern(tmp_path):
    for speaker in ("ann", "bob", "cat", "dan"):
        for take in range(3):
            write(tmp_path / f"{take}_{speaker}_{take}.wav", noise(300), 8000, subtype="PCM_16")
    corpus = get_corpus("audio_folder")
    cfg = config(tmp_path, speaker_pattern=r"^\d+_([a-z]+)_", sample_rate=8000)
    splits = corpus.find_sources(cfg)
    speakers = {k: {s.speaker for s in v} for k, v in splits.items()}
    assert [len(speakers[k]) for k in ("train", "valid", "test")] == [2, 1, 1]
    assert all(len(v) == 3 * len(speakers[k]) for k, v in splits.items())
    assert set().union(*speakers.values()) == {"ann", "bob", "cat", "dan"}

    write(tmp_path / "stray.wav", noise(300), 8000)
    with pytest.raises(CorpusError, match=r"data.speaker_pattern .* 1 of 13 .*stray.wav"):
        corpus.find_sources(cfg)
    with pytest.raises(CorpusError, match="data.speaker_pattern .* not a valid regex"):
        corpus.find_sources(config(tmp_path, speaker_pattern="(["))
    with pytest.raises(CorpusError, match="data.speaker_pattern .* no group"):
        corpus.find_sources(config(tmp_path, speaker_pattern="_"))


# ---------------------------------------------------------------- IAM-OnDB


def _line_xml(strokes) -> str:
    body = "".join(
        '<Stroke colour="black" start_time="0" end_time="1">'
        + "".join(f'<Point x="{x}" y="{y}" time="0.1"/>' for x, y in stroke)
        + "</Stroke>"
        for stroke in strokes
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>'
        '<WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>'
        f"<StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>"
    )


def test_iamondb_split_files_parsing_and_bad_xml(tmp_path):
    strokes = [[(10, 20), (12, 25), (15, 27)], [(30, 20), (31, 22)]]
    forms = {"a01-000u": 2, "a01-001w": 1, "b02-000": 1, "c03-000x": 3, "d04-000": 1}
    for form, n_lines in forms.items():
        folder = tmp_path / "lineStrokes" / form[:3] / form[:7]
        folder.mkdir(parents=True, exist_ok=True)
        for line in range(1, n_lines + 1):
            (folder / f"{form}-{line:02d}.xml").write_text(_line_xml(strokes))
    task = tmp_path / "task"
    task.mkdir()
    split_files = {"trainset": "a01-000u", "testset_t": "a01-001w", "testset_f": "b02-000"}
    for name, form in {**split_files, "testset_v": "c03-000x"}.items():
        (task / f"{name}.txt").write_text(f"{form}\r\n\n")  # d04-000 is in no split

    corpus = get_corpus("iamondb")
    cfg = config(tmp_path, dataset="iamondb")
    splits = corpus.find_sources(cfg)
    assert corpus.OBSERVATION == "strokes"
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [4, 3, 0]
    assert splits["valid"][0].name == "lineStrokes/c03/c03-000/c03-000x-01.xml"
    steps = corpus.read(splits["train"][0], cfg)
    np.testing.assert_array_equal(steps, [[0, 2, -5], [1, 3, -2], [0, 15, 7], [1, 1, -2]])

    bad = tmp_path / "lineStrokes/c03/c03-000/c03-000x-02.xml"
    bad.write_text(_line_xml(strokes)[:-30])
    with pytest.raises(BadInput, match="c03-000x-02.xml: malformed XML"):
        corpus.read(Source("x", bad), cfg)
    bad.write_text(_line_xml(strokes).replace('y="25"', 'y="up"'))
    with pytest.raises(BadInput, match="numeric x, y"):
        corpus.read(Source("x", bad), cfg)
    bad.write_text(_line_xml([[(1, 2)]]))
    with pytest.raises(BadInput, match="at least 2"):
        corpus.read(Source("x", bad), cfg)

    (task / "testset_f.txt").unlink()
    with pytest.raises(CorpusError, match="testset_f.txt are missing"):
        corpus.find_sources(cfg)


# ---------------------------------------------------------------- GW online


def test_gw_online_pages_and_malformed_file(tmp_path):
    for page in range(4):
        for word in range(5):
            path = tmp_path / f"27{page}027{page}" / f"{word}_w.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_text("w\n1 2 0\n3 5 0\n4 4 1\n")
    corpus = get_corpus("gw_online")
    cfg = config(tmp_path, dataset="gw_online")
    splits = corpus.find_sources(cfg)
    pages = {k: {s.path.parent.name for s in v} for k, v in splits.items()}
    assert [len(pages[k]) for k in ("train", "valid", "test")] == [2, 1, 1]
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [10, 5, 5]
    np.testing.assert_array_equal(corpus.read(splits["test"][0], cfg), [[0, 2, 3], [1, 1, -1]])

    bad = tmp_path / "2700270" / "0_w.txt"
    bad.write_text("w\n1 2 0\n3 five 1\n")
    with pytest.raises(BadInput, match=r"0_w.txt:3: expected 'x y pen'"):
        corpus.read(Source("x", bad), cfg)
    bad.write_text("")
    with pytest.raises(BadInput, match="empty"):
        corpus.read(Source("x", bad), cfg)


# ---------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not FSDD_DIR.is_dir(), reason="no ../shared/data/fsdd")
def test_real_fsdd_by_speaker():
    root = FSDD_DIR
    corpus = get_corpus("audio_folder")
    cfg = config(root, speaker_pattern=r"^\d+_([a-z]+)_", sample_rate=8000)
    splits = corpus.find_sources(cfg)
    speakers = {k: {s.speaker for s in v} for k, v in splits.items()}
    assert sum(len(v) for v in splits.values()) == 2500
    assert [len(speakers[k]) for k in ("train", "valid", "test")] == [3, 1, 1]
    assert set().union(*speakers.values()) == {"george", "jackson", "nicolas", "theo", "yweweler"}
    assert all(len(v) == 500 * len(speakers[k]) for k, v in splits.items())
    source = splits["valid"][7]
    wave = corpus.read(source, cfg)
    assert wave.dtype == np.int16
    np.testing.assert_array_equal(wave, sf.read(root / source.name, dtype="int16")[0])
    # at 16 kHz the same file is resampled, and rounded back to int16
    up = corpus.read(source, config(root, speaker_pattern=cfg.speaker_pattern))
    ref = AF.resample(
        torch.from_numpy(sf.read(root / source.name, dtype="float32")[0]), 8000, 16000
    )
    assert up.dtype == np.int16
    np.testing.assert_array_equal(up, q16(ref.numpy()))


@pytest.mark.slow
@pytest.mark.skipif(not GW_DIR.is_dir(), reason="no ../shared/data/gw-online")
def test_real_gw_online_words():
    root = GW_DIR
    corpus = get_corpus("gw_online")
    cfg = config(root, dataset="gw_online")
    splits = corpus.find_sources(cfg)
    pages = {k: {s.path.parent.name for s in v} for k, v in splits.items()}
    assert sum(len(v) for v in splits.values()) == 2404
    assert [len(pages[k]) for k in ("train", "valid", "test")] == [8, 1, 1]
    source = splits["test"][3]
    # independent parse: skip the word line, differences of consecutive points, y already up
    points = np.loadtxt(root / source.name, skiprows=1)
    expected = np.column_stack([points[1:, 2], np.diff(points[:, :2], axis=0)])
    steps = corpus.read(source, cfg)
    assert steps.dtype == np.float32 and steps.shape == (len(points) - 1, 3)
    np.testing.assert_array_equal(steps, expected)
