"""Downloads against a local HTTP server on 127.0.0.1 serving the real data files."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from cnnlab.commands import main
from cnnlab.data import download as dl
from cnnlab.data import load_dataset

LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES = "t10k-images-idx3-ubyte.gz"


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files and honours ``Range: bytes=N-`` with 206, as real mirrors do."""

    requests: list[tuple[str, str | None]] = []
    honour_range = True

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.requests.append((self.path, self.headers.get("Range")))
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        path = Path(self.translate_path(self.path))
        if not (match and self.honour_range and path.is_file()):
            return super().do_GET()
        body = path.read_bytes()
        start = int(match.group(1))
        if start >= len(body):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server(data_dir: Path) -> Iterator[str]:
    """Base URL of a loopback server over ../shared/data."""
    RangeHandler.requests = []
    RangeHandler.honour_range = True
    handler = partial(RangeHandler, directory=str(data_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_full_download_verifies_and_leaves_no_part(server: str, data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "mnist" / IMAGES
    dest = dl.download_file(server + f"mnist/{IMAGES}", tmp_path / IMAGES, sha256(source), size=source.stat().st_size)
    assert dest.read_bytes() == source.read_bytes()
    assert not (tmp_path / f"{IMAGES}.part").exists()
    # A verified file is not fetched again.
    RangeHandler.requests.clear()
    dl.download_file(server + f"mnist/{IMAGES}", dest, sha256(source))
    assert RangeHandler.requests == []


def test_resume_fetches_only_the_rest(server: str, data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "mnist" / IMAGES
    part = tmp_path / f"{IMAGES}.part"
    part.write_bytes(source.read_bytes()[:600_000])  # an interrupted download
    dest = dl.download_file(server + f"mnist/{IMAGES}", tmp_path / IMAGES, sha256(source), size=source.stat().st_size)
    assert RangeHandler.requests == [(f"/mnist/{IMAGES}", "bytes=600000-")]
    assert sha256(dest) == sha256(source) and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server: str, data_dir: Path, tmp_path: Path) -> None:
    RangeHandler.honour_range = False
    source = data_dir / "mnist" / LABELS
    (tmp_path / f"{LABELS}.part").write_bytes(source.read_bytes()[:1000])
    dest = dl.download_file(server + f"mnist/{LABELS}", tmp_path / LABELS, sha256(source))
    assert dest.read_bytes() == source.read_bytes()


def test_checksum_mismatch_is_refused(server: str, tmp_path: Path) -> None:
    with pytest.raises(dl.DownloadError, match="does not match the pinned"):
        dl.download_file(server + f"mnist/{LABELS}", tmp_path / LABELS, "0" * 64)
    assert not (tmp_path / LABELS).exists() and not (tmp_path / f"{LABELS}.part").exists()


def _local_mirror(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    folder, files = dl.REMOTE["mnist"]
    local = tuple(dl.RemoteFile(f.name, (base_url + f"mnist/{f.name}",), f.sha256, f.size) for f in files)
    monkeypatch.setitem(dl.REMOTE, "mnist", (folder, local))


def test_download_command_then_load(server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _local_mirror(monkeypatch, server)
    assert main(["download", "mnist", "--data-dir", str(tmp_path)]) == 0
    test = load_dataset("mnist", "test", tmp_path)
    assert test.images.shape == (10000, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(f.name for f in dl.REMOTE["mnist"][1])


def test_offline_gives_one_clear_error_with_the_manual_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _local_mirror(monkeypatch, f"http://127.0.0.1:{closed_port()}/")
    expected = f"could not download mnist.*Connection refused.*instead download .*{LABELS} from .* into "
    with pytest.raises(dl.DownloadError, match=expected):
        dl.download("mnist", tmp_path)
    assert main(["download", "mnist", "--data-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cnnlab: error: could not download mnist") and error.count("\n") == 1
    assert str((tmp_path / "mnist").resolve()) in error


def test_archives_unpack_safely(tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    dl._unpack(good, tmp_path / "root")
    assert (tmp_path / "root" / "cifar-10-batches-py" / "readme.html").read_bytes() == b"hi"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(dl.DownloadError, match="refused to unpack"):
        dl._unpack(evil, tmp_path / "root")
    assert not (tmp_path / "escaped").exists()
