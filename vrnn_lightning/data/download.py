"""Download on first use: the two public corpora fetched at a pinned version, verified, cached.

    data.download: fsdd        # conf/fsdd.yaml: the Free Spoken Digit Dataset, v1.0.10
    data.download: gw_online   # conf/gw_online.yaml: GW online handwriting, commit dedfc7f

When ``data.root`` is unset and ``data.download`` names a corpus, its files go to
``<data.cache_dir>/downloads/<name>-<version>/`` and data.root points there. A set data.root
always wins (your own copy; nothing is downloaded).

How a partial download never looks finished: the archive streams into ``<name>-<version>
.tar.gz.part`` (resumed with an HTTP Range request on the next try; restarted when the server
ignores Range), is renamed to ``.tar.gz`` only once complete, is verified (the archive's
sha256 where pinned; always the pinned sha256 of the corpus files' contents, their count and
their format), and is unpacked into a temporary folder that is renamed into place in one
step, with ``DOWNLOAD.json`` inside. Only a folder with that file counts as downloaded.

Only the standard library (urllib, tarfile), rich (the progress bar) and soundfile.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from vrnn_lightning.config import DOWNLOADS, ConfigError, DataConfig
from vrnn_lightning.data.source import BadInput, CorpusError

STAMP = "DOWNLOAD.json"  # written last, inside the temporary folder: the mark of a finished one
TIMEOUT_S = 30  # per connection attempt and per read
CHUNK = 1 << 16


class DownloadError(CorpusError):
    """A download that failed or did not verify; the message names the URL, the folder and
    how to place the files by hand. vrnn-prepare, vrnn-fit and vrnn-eval exit with 2."""


@dataclass(frozen=True)
class Pinned:
    """One corpus at one version, and what its files must be once unpacked."""

    name: str  # the data.download value
    title: str
    version: str
    url: str  # a .tar.gz whose single top folder holds the corpus
    dataset: str  # the data.dataset it is read as
    subdir: str  # data.root inside the unpacked top folder ("" = the top folder itself)
    suffix: str  # the corpus's files: those under subdir with this suffix (recursive)
    files: int  # how many there must be
    # sha256 over the files' relative paths and contents (content_digest), so it holds
    # whatever compression the server applies to the archive
    content_sha256: str | None
    license: str
    citation: str
    source: str  # where to read about it
    archive_sha256: str | None = None  # the archive's own bytes, where a server keeps them stable
    check_file: Callable[[Path], None] | None = None  # BadInput on a file of the wrong format

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}"


def _check_wav(path: Path) -> None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises RuntimeError / LibsndfileError
        raise BadInput(f"{path.name}: not a readable WAV ({err})") from None
    if info.samplerate != 8000 or info.channels != 1 or info.frames < 1:
        raise BadInput(
            f"{path.name}: {info.samplerate} Hz, {info.channels} channel(s), {info.frames} "
            "samples; expected mono 8 kHz audio"
        )


def _check_strokes(path: Path) -> None:
    from vrnn_lightning.data.corpora.gw_online import read_points

    _word, points = read_points(path)
    if len(points) < 2:
        raise BadInput(f"{path.name}: {len(points)} point(s); expected a pen trajectory")


# The pins. FSDD's tag and GW online's commit were read from the repositories themselves
# (git tags and log); the content digests were computed from those trees with
# content_digest, and the counts are their files. GitHub makes its archives on the fly and
# has changed their compression before, so the archives' own sha256 is not pinned.
PINNED: dict[str, Pinned] = {
    "fsdd": Pinned(
        name="fsdd",
        title="Free Spoken Digit Dataset",
        version="1.0.10",
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
        dataset="audio_folder",
        subdir="recordings",
        suffix=".wav",
        files=3000,  # 6 speakers x 10 digits x 50 takes
        content_sha256="a2e8a660492f28d9eed6270b290d26cbc5c81d6077ce87d3c0ad5adf4d4ee696",
        license="Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)",
        citation="Z. Jackson et al., Free Spoken Digit Dataset (FSDD) v1.0.10, "
        "https://github.com/Jakobovski/free-spoken-digit-dataset (Zenodo DOI in its README)",
        source="https://github.com/Jakobovski/free-spoken-digit-dataset",
        check_file=_check_wav,
    ),
    "gw_online": Pinned(
        name="gw_online",
        title="Online-Handwritten George Washington Dataset",
        version="dedfc7f",
        url="https://github.com/cwiep/gw-online-dataset/archive/"
        "dedfc7f6b44cd7a203fd04de8d4d4d406f8eb11c.tar.gz",
        dataset="gw_online",
        subdir="",
        suffix=".txt",
        files=4860,  # 20 pages (270-279, 300-309), one file per word
        content_sha256="244c6f87fc20faa38a0b3e06386f71fb6cfddabc74ecce655409666072473866",
        license="non-commercial research and educational purposes only (the dataset's terms)",
        citation='C. Wieprecht, L. Rothacker, G. A. Fink, "Word Spotting in Historical Document '
        'Collections with Online-Handwritten Queries", Proc. IAPR Int. Workshop on Document '
        "Analysis Systems (DAS), Santorini, Greece, 2016",
        source="https://github.com/cwiep/gw-online-dataset",
        check_file=_check_strokes,
    ),
}
assert set(PINNED) == set(DOWNLOADS) - {None}, "config.DOWNLOADS lists the pinned corpora"


# ---------------------------------------------------------------- where a download lives


def downloads_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "downloads"


def finished_root(pin: Pinned, cache_dir: str | Path) -> Path | None:
    """data.root of a finished download of ``pin`` under ``cache_dir``, else None."""
    folder = downloads_dir(cache_dir) / pin.stem
    return folder / pin.subdir if (folder / STAMP).is_file() else None


def resolve_root(cfg: DataConfig, *, fetch: bool, console: Console | None = None) -> DataConfig:
    """``cfg`` with data.root pointing at the downloaded corpus when data.root is unset and
    data.download names one: downloaded now if ``fetch`` (else left unset when it is not
    there yet). Any other cfg is returned as it is."""
    if cfg.root or not cfg.download:
        return cfg
    pin = PINNED.get(cfg.download)
    if pin is None:
        valid = ", ".join(["null", *PINNED])
        raise ConfigError(f"data.download: '{cfg.download}' is not valid; expected one of {valid}")
    if cfg.dataset != pin.dataset:
        raise ConfigError(
            f"data.download: {cfg.download} is read as data.dataset={pin.dataset}, "
            f"not {cfg.dataset}"
        )
    root = finished_root(pin, cfg.cache_dir)
    if root is None and fetch:
        root = download(pin, downloads_dir(cfg.cache_dir), console=console)
    return replace(cfg, root=str(root)) if root is not None else cfg


# ---------------------------------------------------------------- the download itself


def download(pin: Pinned, where: str | Path, *, console: Console | None = None) -> Path:
    """Fetch, verify and unpack ``pin`` into ``where/<name>-<version>``; returns data.root.

    DownloadError (naming the URL, the folder and how to place the files by hand) when the
    fetch fails or what arrived does not verify; nothing that looks finished is left then.
    """
    console = console or Console(stderr=True)
    where = Path(where)
    folder = where / pin.stem
    if (folder / STAMP).is_file():
        return folder / pin.subdir
    where.mkdir(parents=True, exist_ok=True)
    # one download at a time (e.g. the first runs of a sweep, started together): the others
    # wait, then find it finished
    with _locked(where / f".{pin.stem}.lock"):
        if (folder / STAMP).is_file():
            return folder / pin.subdir
        return _download(pin, where, folder, console)


def _download(pin: Pinned, where: Path, folder: Path, console: Console) -> Path:
    _remove_stale_temporaries(where, pin)
    if folder.exists():  # not ours (no stamp): files put there by hand, or a half copy
        raise DownloadError(
            f"{folder} exists but is not a finished download (it has no {STAMP}); remove it "
            f"to download the {pin.title} again, or use it as it is with data.root="
            f"{folder / pin.subdir}"
        )
    archive = where / f"{pin.stem}.tar.gz"
    _print_terms(console, pin)  # on the first download (or unpack of a placed archive) only
    if archive.is_file():
        console.print(f"using the archive already at {archive}")
    else:
        _fetch(pin, archive, console)
    tmp = where / f".{pin.stem}.tmp-{os.getpid()}"
    try:
        top = _unpack_verified(pin, archive, tmp, console)
        _write_stamp(top, pin)
        try:
            os.rename(top, folder)  # one step: the folder appears whole, with its stamp
        except OSError:
            if not (folder / STAMP).is_file():  # not another process that finished first
                raise
    except BadInput as err:
        archive.unlink(missing_ok=True)  # a bad archive is fetched afresh next time
        raise DownloadError(
            f"the {pin.title} from {pin.url} does not verify: {err}. Nothing was kept in "
            f"{where}; run again to download it afresh. {_by_hand(pin, where)}"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink(missing_ok=True)  # unpacked and verified: the archive is not needed
    console.print(f"[green]downloaded[/] {pin.title} {pin.version} -> {folder}")
    return folder / pin.subdir


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` while in the block (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _by_hand(pin: Pinned, where: Path) -> str:
    return (
        f"To place the files by hand: fetch {pin.url} by other means and put it at "
        f"{where / (pin.stem + '.tar.gz')} (it is verified and unpacked on the next run), or "
        f"unpack it anywhere and set data.root=PATH{'/' + pin.subdir if pin.subdir else ''} "
        f"(PATH: the unpacked top folder)"
    )


def _print_terms(console: Console, pin: Pinned) -> None:
    console.print(
        f"[bold]Downloading the {pin.title}[/] ({pin.version}) from {pin.url}\n"
        f"  license: {pin.license}\n  cite: {pin.citation}\n  more: {pin.source}"
    )


def _open(url: str, headers: dict[str, str]):
    """urlopen; one function, so that tests can refuse any host but their own server."""
    request = urllib.request.Request(url, headers={"User-Agent": "vrnn-lightning", **headers})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _fetch(pin: Pinned, archive: Path, console: Console) -> None:
    """Stream pin.url into ``archive.part``, resuming what an earlier try left; renamed to
    ``archive`` once complete."""
    part = archive.with_name(archive.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        try:
            response = _open(pin.url, headers)
        except urllib.error.HTTPError as err:
            if err.code != 416 or not have:  # 416: the range is past the end: start afresh
                raise
            part.unlink()
            have, response = 0, _open(pin.url, {})
        with response:
            resumed = have and response.status == 206
            if have and not resumed:
                console.print("the server ignores ranges: downloading from the start")
            offset = have if resumed else 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            with _progress(console) as progress, open(part, "ab" if resumed else "wb") as out:
                task = progress.add_task(pin.stem, total=total, completed=offset)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
            got = part.stat().st_size
            if total is not None and got < total:
                raise ConnectionError(f"the connection closed after {got} of {total} bytes")
    except (OSError, http.client.HTTPException, ValueError) as err:  # URLError is an OSError
        reason = getattr(err, "reason", None) or err
        kept = part.stat().st_size if part.is_file() else 0
        resume = (
            f"The {kept:,} bytes received are kept in {part}; run again to resume."
            if kept
            else f"Nothing was kept in {archive.parent}."
        )
        raise DownloadError(
            f"cannot download the {pin.title} from {pin.url}: {reason}. {resume} "
            f"Without network: {_by_hand(pin, archive.parent)}"
        ) from None
    os.replace(part, archive)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _unpack_verified(pin: Pinned, archive: Path, tmp: Path, console: Console) -> Path:
    """Unpack ``archive`` into ``tmp`` and verify it; returns the unpacked top folder.
    BadInput saying what is wrong."""
    if pin.archive_sha256 and file_sha256(archive) != pin.archive_sha256:
        raise BadInput(f"the archive's sha256 is {file_sha256(archive)}, not {pin.archive_sha256}")
    tmp.mkdir()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
            tops.discard("pax_global_header")  # git archive's comment entry
            if len(tops) != 1:
                raise BadInput(f"expected one top folder in the archive, found {len(tops)}")
            top = tmp / tops.pop()
            for m in members:
                _extract(tar, m, tmp)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BadInput(f"not a complete .tar.gz archive ({err})") from None
    root = top / pin.subdir
    files = corpus_files(root, pin.suffix)
    if len(files) != pin.files:
        raise BadInput(
            f"{len(files)} {pin.suffix} files under {pin.subdir or 'its top folder'}, "
            f"expected {pin.files}"
        )
    console.print(f"verifying {len(files)} files ...")
    digest = content_digest(root, files)
    if pin.content_sha256 and digest != pin.content_sha256:
        raise BadInput(f"the files' content sha256 is {digest}, not {pin.content_sha256}")
    if pin.check_file is not None:
        for path in files:
            pin.check_file(path)
    return top


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, into: Path) -> None:
    """Regular files and folders only, and only inside ``into`` (no links, devices or paths
    that climb out: an archive cannot write elsewhere)."""
    parts = Path(member.name).parts
    if not parts or member.name.startswith("/") or ".." in parts:
        raise BadInput(f"the archive has an unsafe path: {member.name}")
    target = into.joinpath(*parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
    elif member.isfile():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.utime(target, (member.mtime, member.mtime))  # the archive's times, as tar does
    # pax headers, links and devices are left out: a corpus is plain files


def corpus_files(root: Path, suffix: str) -> list[Path]:
    """The files under ``root`` (recursive, hidden ones aside) ending in ``suffix``."""
    return sorted(
        (p for p in root.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def content_digest(root: Path, files: list[Path]) -> str:
    """sha256 over each file's path relative to ``root`` and the sha256 of its bytes."""
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _write_stamp(top: Path, pin: Pinned) -> None:
    stamp = {
        "name": pin.name,
        "version": pin.version,
        "url": pin.url,
        "files": pin.files,
        "content_sha256": pin.content_sha256,
        "license": pin.license,
        "citation": pin.citation,
        "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (top / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def _remove_stale_temporaries(where: Path, pin: Pinned) -> None:
    """Temporary folders of unpacks that died (their process is gone)."""
    for tmp in where.glob(f".{pin.stem}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    with contextlib.suppress(ProcessLookupError):
        try:
            os.kill(pid, 0)
        except PermissionError:
            return True  # someone else's process
        return True
    return False
