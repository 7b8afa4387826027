"""data.download: fetched from a server on 127.0.0.1 that each test starts and stops, serving
an archive the test builds. Success, a bad checksum, count or format (a clear error and
nothing left behind), a server that dies halfway (nothing that looks finished; the next try
resumes), a server that ignores ranges, no network, and conf/fsdd.yaml on a fresh clone."""

from __future__ import annotations

import http.server
import io
import socket
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from vrnn_lightning.config import ConfigError, load_config
from vrnn_lightning.data import download as dl
from vrnn_lightning.data.pipeline import locate
from vrnn_lightning.data.source import CorpusError
from vrnn_lightning.data.store import as_data_config
from vrnn_lightning.prepare import main as prepare_main

FSDD_CONF = str(Path(__file__).resolve().parents[1] / "conf" / "fsdd.yaml")
SPEAKERS = ("alice", "bob", "carol")  # three speakers: conf/fsdd.yaml's split needs 3


class Server:
    """One archive at /corpus.tar.gz; ``die_after`` bytes then the connection closes;
    ``ranges``: whether Range requests are honoured. ``requests`` records each Range asked."""

    def __init__(self, body: bytes):
        self.body, self.die_after, self.ranges, self.requests = body, None, True, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                asked = self.headers.get("Range")
                server.requests.append(asked)
                start = int(asked[6:-1]) if asked and server.ranges else 0
                data = server.body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/*")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.die_after is not None:
                    data = data[: server.die_after]
                    self.close_connection = True
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(body: bytes) -> Server:
        servers.append(Server(body))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def fsdd_like(
    tmp_path: Path, n_per_speaker: int = 2, bad: str | None = None
) -> tuple[bytes, dl.Pinned]:
    """A .tar.gz shaped like FSDD's release (one top folder, recordings/*.wav at 8 kHz) and
    a pin of it. ``bad``: the name of one file written as not-audio."""
    top = tmp_path / "build" / "fsdd-test-1"
    rec = top / "recordings"
    rec.mkdir(parents=True)
    (top / "README.md").write_text("a test corpus\n")
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for take in range(n_per_speaker):
            name = f"{take % 10}_{speaker}_{take}.wav"
            if name == bad:
                (rec / name).write_bytes(b"not audio at all" * 10)
                continue
            wave = (rng.standard_normal(2400) * 3000).astype(np.int16)  # 0.3 s
            sf.write(rec / name, wave, 8000, subtype="PCM_16")
    files = dl.corpus_files(rec, ".wav")
    pin = replace(
        dl.PINNED["fsdd"],
        version="test",
        files=len(files),
        content_sha256=dl.content_digest(rec, files),
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(top, arcname=top.name)
    return buf.getvalue(), pin


def leftovers(where: Path) -> list[str]:
    """What a download left in ``where``, its lock file aside."""
    if not where.exists():
        return []
    return sorted(p.name for p in where.iterdir() if not p.name.endswith(".lock"))


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_a_download_arrives_verified_with_its_license_and_is_reused_offline(tmp_path, serve):
    body, pin = fsdd_like(tmp_path)
    server = serve(body)
    pin = replace(pin, url=server.url)
    console = quiet()
    where = tmp_path / "downloads"
    root = dl.download(pin, where, console=console)
    assert root == where / "fsdd-test" / "recordings"
    assert len(list(root.glob("*.wav"))) == 6
    assert (where / "fsdd-test" / dl.STAMP).is_file()
    assert leftovers(where) == ["fsdd-test"]  # no .part, no archive, no temporary folder
    said = console.file.getvalue()
    assert "CC BY-SA 4.0" in said and "cite:" in said and server.url in said
    server.stop()  # offline now: the finished download is used as it is
    again = quiet()
    assert dl.download(pin, where, console=again) == root
    assert "license" not in again.file.getvalue()  # printed on the first download only


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"content_sha256": "0" * 64}, "content sha256"),
        ({"archive_sha256": "0" * 64}, "archive's sha256"),
        ({"files": 7}, "6 .wav files under recordings, expected 7"),
    ],
)
def test_a_bad_checksum_or_count_is_a_clear_error_and_leaves_nothing(
    tmp_path, serve, change, expected
):
    body, pin = fsdd_like(tmp_path)
    pin = replace(pin, url=serve(body).url, **change)
    where = tmp_path / "downloads"
    with pytest.raises(dl.DownloadError) as err:
        dl.download(pin, where, console=quiet())
    message = str(err.value)
    assert expected in message and pin.url in message and str(where) in message
    assert "by hand" in message
    assert leftovers(where) == []  # nothing extracted, no archive: the next try starts afresh
    assert dl.finished_root(pin, tmp_path) is None


def test_a_file_of_the_wrong_format_is_named(tmp_path, serve):
    body, pin = fsdd_like(tmp_path, bad="1_bob_1.wav")
    pin = replace(pin, url=serve(body).url)
    with pytest.raises(dl.DownloadError, match=r"1_bob_1\.wav: not a readable WAV"):
        dl.download(pin, tmp_path / "downloads", console=quiet())
    assert leftovers(tmp_path / "downloads") == []


def test_stroke_files_are_parsed(tmp_path, serve):
    top = tmp_path / "build" / "gw-test"
    for page in ("2700270", "2710271", "2720272"):
        (top / page).mkdir(parents=True)
        (top / page / "1_the.txt").write_text("the\n1 2 0\n3 5 0\n4 4 1\n")
    (top / "2720272" / "2_bad.txt").write_text("bad\n1 2\n")
    files = dl.corpus_files(top, ".txt")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(top, arcname=top.name)
    pin = replace(
        dl.PINNED["gw_online"],
        version="test",
        url=serve(buf.getvalue()).url,
        files=len(files),
        content_sha256=dl.content_digest(top, files),
    )
    with pytest.raises(dl.DownloadError, match=r"2_bad\.txt:2: expected 'x y pen'"):
        dl.download(pin, tmp_path / "downloads", console=quiet())
    (top / "2720272" / "2_bad.txt").unlink()  # without it, the corpus verifies
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(top, arcname=top.name)
    files = dl.corpus_files(top, ".txt")
    pin = replace(
        pin,
        url=serve(buf.getvalue()).url,
        files=len(files),
        content_sha256=dl.content_digest(top, files),
    )
    root = dl.download(pin, tmp_path / "downloads", console=quiet())
    assert root == tmp_path / "downloads" / "gw_online-test"  # data.root: the page folders
    assert len(list(root.glob("*/*.txt"))) == 3


def test_a_server_that_dies_halfway_leaves_nothing_finished_and_the_next_try_resumes(
    tmp_path, serve
):
    body, pin = fsdd_like(tmp_path, n_per_speaker=20)
    server = serve(body)
    server.die_after = len(body) // 2
    pin = replace(pin, url=server.url)
    where = tmp_path / "downloads"
    with pytest.raises(dl.DownloadError, match="run again to resume") as err:
        dl.download(pin, where, console=quiet())
    assert pin.url in str(err.value)
    assert leftovers(where) == ["fsdd-test.tar.gz.part"]  # no archive, no folder
    assert dl.finished_root(pin, tmp_path) is None
    server.die_after = None
    root = dl.download(pin, where, console=quiet())
    assert server.requests == [None, f"bytes={len(body) // 2}-"]  # resumed where it stopped
    assert len(list(root.glob("*.wav"))) == 60
    assert leftovers(where) == ["fsdd-test"]


def test_a_server_that_ignores_ranges_restarts_from_the_start(tmp_path, serve):
    body, pin = fsdd_like(tmp_path, n_per_speaker=20)
    server = serve(body)
    server.die_after, server.ranges = len(body) // 3, False
    pin = replace(pin, url=server.url)
    where = tmp_path / "downloads"
    with pytest.raises(dl.DownloadError):
        dl.download(pin, where, console=quiet())
    server.die_after = None
    console = quiet()
    root = dl.download(pin, where, console=console)
    assert "ignores ranges" in console.file.getvalue()
    assert len(list(root.glob("*.wav"))) == 60


def test_two_downloads_at_once_fetch_once(tmp_path, serve):
    body, pin = fsdd_like(tmp_path)
    server = serve(body)
    pin = replace(pin, url=server.url)
    roots = []
    threads = [
        threading.Thread(target=lambda: roots.append(dl.download(pin, tmp_path, console=quiet())))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert roots == [tmp_path / "fsdd-test" / "recordings"] * 2
    assert server.requests == [None]  # the second waited for the first, then found it


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: a connection to it is refused


def test_no_network_is_a_clear_message_naming_url_folder_and_what_to_do(tmp_path):
    pin = replace(dl.PINNED["fsdd"], url=f"http://127.0.0.1:{closed_port()}/fsdd.tar.gz")
    where = tmp_path / "downloads"
    with pytest.raises(dl.DownloadError) as err:
        dl.download(pin, where, console=quiet())
    message = str(err.value)
    assert "refused" in message.lower() and pin.url in message
    assert str(where / "fsdd-1.0.10.tar.gz") in message  # where to put the archive by hand
    assert "data.root=PATH/recordings" in message
    assert leftovers(where) == []


def test_an_archive_placed_by_hand_is_verified_and_unpacked_without_network(tmp_path):
    body, pin = fsdd_like(tmp_path)
    pin = replace(pin, url=f"http://127.0.0.1:{closed_port()}/never.tar.gz")
    where = tmp_path / "downloads"
    where.mkdir()
    (where / "fsdd-test.tar.gz").write_bytes(body)
    root = dl.download(pin, where, console=quiet())
    assert len(list(root.glob("*.wav"))) == 6


def test_a_folder_not_made_by_a_download_is_left_alone(tmp_path):
    pin = replace(dl.PINNED["fsdd"], url=f"http://127.0.0.1:{closed_port()}/x.tar.gz")
    (tmp_path / "fsdd-1.0.10" / "recordings").mkdir(parents=True)
    with pytest.raises(dl.DownloadError, match=r"not a finished download.*data\.root="):
        dl.download(pin, tmp_path, console=quiet())
    assert (tmp_path / "fsdd-1.0.10" / "recordings").is_dir()


def test_fresh_clone_conf_fsdd_downloads_and_prepares(tmp_path, serve, monkeypatch, capsys):
    body, pin = fsdd_like(tmp_path)
    monkeypatch.setitem(dl.PINNED, "fsdd", replace(pin, url=serve(body).url))
    monkeypatch.chdir(tmp_path)  # a fresh clone: no ../shared beside it, a cache of its own
    conf = FSDD_CONF
    assert prepare_main(["--config", conf]) == 0
    out = capsys.readouterr().out
    assert "license:" in out and "Creative" in out
    assert (tmp_path / "data_cache" / "downloads" / "fsdd-test" / "recordings").is_dir()
    assert len(list((tmp_path / "data_cache").glob("audio_folder-*/train.h5"))) == 1
    assert prepare_main(["--config", conf]) == 0  # the second time: reused, nothing fetched
    assert "reusing" in capsys.readouterr().out


def test_a_failed_download_exits_2_from_vrnn_prepare(tmp_path, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}/fsdd.tar.gz"
    monkeypatch.setitem(dl.PINNED, "fsdd", replace(dl.PINNED["fsdd"], url=url))
    conf = FSDD_CONF
    assert prepare_main(["--config", conf, f"data.cache_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert url in err and str(tmp_path / "downloads") in err


def test_data_download_is_validated_naming_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"data\.download.*null, fsdd, gw_online"):
        load_config(None, ["data.download=librispeech"])
    cfg = as_data_config({"dataset": "timit", "download": "fsdd"})
    with pytest.raises(ConfigError, match=r"data\.download: fsdd is read as data\.dataset"):
        dl.resolve_root(cfg, fetch=False)


def test_a_set_root_wins_and_locate_without_fetch_never_downloads(tmp_path, monkeypatch):
    def no_network(url, headers):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(dl, "_open", no_network)
    cfg = as_data_config(load_config(FSDD_CONF, [f"data.cache_dir={tmp_path}"]).data)
    assert dl.resolve_root(replace(cfg, root="/my/copy"), fetch=True).root == "/my/copy"
    # what vrnn-sample does (never prepares): without a finished download, data.root is unset
    with pytest.raises(CorpusError, match="data.root is not set"):
        locate(cfg, fetch=False)
