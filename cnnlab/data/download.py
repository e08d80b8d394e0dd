"""Verified, resumable downloads of the public datasets.

Each file has a pinned SHA-256 and size. A download goes to ``<file>.part``; an
interrupted one resumes with an HTTP Range request; the finished file is checked
against its hash before it is renamed into place (``os.replace``, atomic), so a
file under its real name is always a verified one. CIFAR archives are then
unpacked with tarfile's "data" filter, which refuses links and paths outside the
target folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where to get it and what it must hash to.

    Attributes:
        name: the file name under the dataset's folder.
        urls: mirrors, tried in order.
        sha256: hex digest of the published file.
        size: its size in bytes.
        unpack: True for an archive to extract into the data root.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str
    size: int
    unpack: bool = False


def _idx_files(base_urls: tuple[str, ...], pins: dict[str, tuple[str, int]]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(name, tuple(url + name for url in base_urls), sha, size) for name, (sha, size) in pins.items()
    )


# The MNIST and Fashion-MNIST hashes are those of the official files (their MD5s
# equal the published ones); yann.lecun.com often refuses scripts, so the
# PyTorch mirror comes first.
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

# dataset name -> (folder under the data root, files)
REMOTE: dict[str, tuple[str, tuple[RemoteFile, ...]]] = {
    "mnist": (
        "mnist",
        _idx_files(
            MNIST_URLS,
            {
                "train-images-idx3-ubyte.gz": (
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    9_912_422,
                ),
                "train-labels-idx1-ubyte.gz": (
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    28_881,
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    1_648_877,
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    4_542,
                ),
            },
        ),
    ),
    "fashion-mnist": (
        "fashion-mnist",
        _idx_files(
            FASHION_URLS,
            {
                "train-images-idx3-ubyte.gz": (
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    26_421_880,
                ),
                "train-labels-idx1-ubyte.gz": (
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    29_515,
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    4_422_102,
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    5_148,
                ),
            },
        ),
    ),
    "cifar10": (
        ".",
        (
            RemoteFile(
                "cifar-10-python.tar.gz",
                (CIFAR_URL + "cifar-10-python.tar.gz",),
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                170498071,
                unpack=True,
            ),
        ),
    ),
    "cifar100": (
        ".",
        (
            RemoteFile(
                "cifar-100-python.tar.gz",
                (CIFAR_URL + "cifar-100-python.tar.gz",),
                "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
                169001437,
                unpack=True,
            ),
        ),
    ),
}


class DownloadError(CnnlabError, OSError):
    """A download that failed or did not verify; the message says the manual way (a user-facing
    error, and an OSError as before)."""


def manual_instructions(name: str, root: Path) -> str:
    """Where to put which file by hand, for one dataset."""
    folder, files = REMOTE[name]
    target = (root / folder).resolve()
    listing = "; ".join(f"{f.name} from {f.urls[0]} (sha256 {f.sha256[:12]}...)" for f in files)
    unpack = " and unpack it there (tar -xzf)" if any(f.unpack for f in files) else ""
    return f"download {listing} into {target}{unpack}"


def missing_files_error(name: str, folder: Path, expected: list[str]) -> FileNotFoundError:
    """The error for a dataset whose files are not there: which files, and how to get them."""
    how = f"run `cnnlab download {name} --data-dir {folder.parent}` or {manual_instructions(name, folder.parent)}"
    if name not in REMOTE:
        how = "copy them there"
    return FileNotFoundError(f"{name}: expected {', '.join(expected)} in {folder}; {how}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: Path, sha256: str, *, size: int | None = None) -> Path:
    """Downloads ``url`` to ``dest`` through a resumable ``dest.part`` and verifies it.

    An existing ``.part`` is continued with a Range request (a server that
    ignores the range restarts it). The finished file must hash to ``sha256``,
    else the partial file is deleted and DownloadError raised; only then is it
    renamed to ``dest``.

    Raises:
        DownloadError: network failure (the ``.part`` is kept for resuming) or a
            hash mismatch.
    """
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        _fetch_into(url, part, have)
    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise DownloadError(f"{url}: sha256 {actual} does not match the pinned {sha256}; the download was deleted")
    with part.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, have: int) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            resumed = response.status == 206
            if have and not resumed:
                log.info("%s: server ignored the range request, starting over", url)
            with part.open("ab" if resumed else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part already holds the whole file
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: {reason}") from None


def download(name: str, root: Path) -> Path:
    """Fetches and verifies every file of dataset ``name`` under ``root``; returns its folder.

    Raises:
        CnnlabError: a dataset with nothing to download.
        DownloadError: every mirror failed; the message says how to place the
            files by hand.
    """
    if name not in REMOTE:
        raise CnnlabError(f"nothing to download for {name!r}: downloadable datasets are {', '.join(REMOTE)}")
    folder, files = REMOTE[name]
    target = root / folder
    for remote in files:
        path = _download_any(remote, target, name, root)
        if remote.unpack:
            _unpack(path, target)
    return target


def _download_any(remote: RemoteFile, target: Path, name: str, root: Path) -> Path:
    failures = []
    for url in remote.urls:
        try:
            return download_file(url, target / remote.name, remote.sha256, size=remote.size)
        except DownloadError as err:
            failures.append(str(err))
            log.info("%s; trying the next mirror", err)
    raise DownloadError(f"could not download {name} ({'; '.join(failures)}); instead {manual_instructions(name, root)}")


def _unpack(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except tarfile.TarError as err:
        raise DownloadError(f"{archive}: refused to unpack ({err})") from None
