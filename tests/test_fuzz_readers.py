"""A seeded, bounded fuzzer over every reader (issue 13): hostile files get one clear error.

Each case takes a small valid dataset (or checkpoint), damages one of its files
(random garbage, truncation, bit flips, huge declared sizes, header fields of
the wrong kind) and reads it. The property:

* the reader accepts it and returns valid data (the right types, labels inside
  the class list, finite vectors...), or
* it refuses it with :class:`cnnlab.errors.CnnlabError` (or FileNotFoundError)
  whose one-line message names the damaged file;
* nothing else: no other exception, no hang (each case gets ``CASE_TIMEOUT_S``
  seconds, enforced with SIGALRM), and no allocation beyond a bound.

The memory bound: the cases run in a child process whose address space is
capped with ``resource.setrlimit(RLIMIT_AS)`` at its size after the imports plus
``MEMORY_BOUND`` (1 GiB). The damaged files are a few KB, so a reader that
believed a header (a 100000000000-word vector file, a CIFAR array of a million
images, a gzip bomb) would need far more: it would hit the cap and raise
MemoryError, which the property counts as a failure.

Readers: IDX (raw and .gz), CIFAR python pickles and binaries, CIFAR-10 JPEG
tar shards, image folders, word2vec text and binary, the sentence datasets
(SST-2, MR, TREC), ISBI slices, and cnnlab checkpoints (JSON and tensors file).

Run it alone: ``python tests/test_fuzz_readers.py --seed 1 --cases 40`` prints
every failing case; the test runs seed 0 with ``CASES_PER_READER`` cases a reader.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES_PER_READER = 50
CASE_TIMEOUT_S = 20
MEMORY_BOUND = 1 << 30
SEED = 0


# --- valid layouts ----------------------------------------------------------------------------------


@dataclass
class Reader:
    """A reader under test: writes a valid layout, names the files to damage, and reads it back."""

    name: str
    build: Callable[[Path], list[Path]]  # writes the layout under the folder; returns the files to damage
    read: Callable[[Path], object]  # reads the layout and validates what it returns (AssertionError if bad)
    header: Callable[[bytes, random.Random], bytes] | None = None  # a format-aware "huge size" mutation


def _png_bytes(array, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _check_image_dataset(dataset) -> None:
    import torch

    assert dataset.images.dtype == torch.uint8 and dataset.images.dim() == 4
    assert len(dataset.labels) == len(dataset.images) > 0
    assert int(dataset.labels.min()) >= 0 and int(dataset.labels.max()) < len(dataset.classes)


# IDX
def _idx(shape: tuple[int, ...], data: bytes, magic_type: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, magic_type, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + data


def _build_idx(folder: Path, compress: bool) -> list[Path]:
    import numpy as np

    rng = np.random.default_rng(0)
    folder = folder / "mnist"
    folder.mkdir(parents=True)
    images = _idx((5, 28, 28), rng.integers(0, 256, 5 * 784, dtype=np.uint8).tobytes())
    labels = _idx((5,), bytes([3, 1, 4, 1, 5]))
    paths = []
    for stem, data in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        path = folder / (stem + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(data) if compress else data)
        paths.append(path)
    return paths


def _read_mnist(root: Path) -> None:
    from cnnlab.data import load_dataset

    _check_image_dataset(load_dataset("mnist", "test", root))


def _idx_header(data: bytes, rng: random.Random) -> bytes:
    """A dimension of the IDX header set to a huge value (for .gz files: inside a valid gzip stream)."""
    compressed = data[:2] == b"\x1f\x8b"
    raw = bytearray(gzip.decompress(data) if compressed else data)
    ndim = raw[3]
    dim = rng.randrange(ndim) if ndim else 0
    raw[4 + 4 * dim : 8 + 4 * dim] = struct.pack(">I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 24, 60000]))
    if compressed and rng.random() < 0.5:  # and a bomb: the declared size, in zeros, behind it
        return gzip.compress(bytes(raw) + bytes(1 << 22))
    return gzip.compress(bytes(raw)) if compressed else bytes(raw)


# CIFAR
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _build_cifar_python(folder: Path) -> list[Path]:
    import numpy as np

    folder = folder / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.random.default_rng(1).integers(0, 256, (4, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [3, 8, 8, 0], b"data": data}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                                                        b"num_vis": 3072}, protocol=2))
    return [folder / "test_batch", folder / "batches.meta"]


class _Call:
    """Pickles as a call of ``function(*args)``: how a hostile file asks NumPy for a huge array."""

    def __init__(self, function: Callable, *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple:
        return self.function, self.args


def _pickle_header(data: bytes, rng: random.Random) -> bytes:
    """A batch whose array declares a huge shape, or whose labels nest shared lists a billion deep."""
    import numpy as np

    shape = rng.choice([(1_300_000, 3072), (1 << 40,), (4, 3072 << 20), (-1, 3072)])
    if rng.random() < 0.3:
        nested: list = [3] * 1000
        for _ in range(2):
            nested = [nested] * 1000
        # 4 x 1000^3 labels from a few KB of pickle (memo references), should NumPy be given them
        batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [nested] * 4}
    else:
        maker = rng.choice([(np.ndarray, shape, np.dtype("u1")), (np.zeros(0).__reduce__()[0], np.ndarray, shape, b"B")])
        batch = {b"data": _Call(*maker), b"labels": [3, 8, 8, 0]}
    return pickle.dumps(batch, protocol=rng.choice([2, 4]))


def _build_cifar_binary(folder: Path) -> list[Path]:
    import numpy as np

    folder = folder / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rows = np.random.default_rng(2).integers(0, 256, (4, 3073), dtype=np.uint8)
    rows[:, 0] = [3, 8, 8, 0]
    (folder / "test_batch.bin").write_bytes(rows.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES) + "\n")
    return [folder / "test_batch.bin", folder / "batches.meta.txt"]


def _build_jpeg_shards(folder: Path) -> list[Path]:
    import numpy as np

    folder = folder / "cifar10-jpg"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    with tarfile.open(folder / "test-000.tar", "w") as tar:
        for i, name in enumerate(CIFAR_CLASSES):
            data = _png_bytes(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "JPEG")
            info = tarfile.TarInfo(f"test/{name}/{i:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [folder / "test-000.tar"]


def _read_cifar10(root: Path) -> None:
    from cnnlab.data import load_dataset

    dataset = load_dataset("cifar10", "test", root)
    _check_image_dataset(dataset)
    assert tuple(dataset.images.shape[1:]) == (3, 32, 32)


def _tar_header(data: bytes, rng: random.Random) -> bytes:
    """The size field of the first member set to a huge octal number (checksum fixed, so tarfile believes it)."""
    block = bytearray(data[:512])
    if len(block) < 512:
        return data
    block[124:136] = rng.choice([b"77777777777\0", b"07777777777\0", b"00000100000\0"])
    block[148:156] = b"        "
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block) + data[512:]


# image folders
def _build_image_folder(folder: Path) -> list[Path]:
    import numpy as np

    rng = np.random.default_rng(4)
    paths = []
    for cls in ("ants", "bees"):
        for i, fmt in enumerate(("PNG", "JPEG")):
            path = folder / "train" / cls / f"{i}.{fmt.lower()}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png_bytes(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), fmt))
            paths.append(path)
    return paths


def _read_image_folder(root: Path) -> None:
    from cnnlab.data import load_dataset

    _check_image_dataset(load_dataset(f"folder:{root}", "train"))


def _png_header(data: bytes, rng: random.Random) -> bytes:
    """A PNG whose IHDR declares a huge width and height, with a correct CRC (a decompression bomb's header)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return data[: rng.randrange(len(data) + 1)]
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", rng.choice([1 << 15, 1 << 20, 0x7FFFFFFF]), rng.choice([1 << 15, 0x7FFFFFFF]))
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return data[:16] + bytes(ihdr) + crc + data[33:]


# word2vec
def _build_vectors(folder: Path, binary: bool) -> list[Path]:
    import torch

    from cnnlab.text.vectors import KeyedVectors

    path = folder / ("vectors.bin" if binary else "vectors.txt")
    words = ["the", "cat", "sat", "café", "mat"]
    KeyedVectors(words, torch.randn(5, 4, generator=torch.Generator().manual_seed(5))).save_word2vec_format(
        path, binary=binary
    )
    return [path]


def _read_vectors(binary: bool | None) -> Callable[[Path], None]:
    def read(root: Path) -> None:
        import numpy as np

        from cnnlab.text.vectors import KeyedVectors

        path = next(root.glob("vectors.*"))
        vectors = KeyedVectors.load_word2vec_format(path, binary=binary)
        assert vectors.vectors.ndim == 2 and len(vectors.index_to_key) == len(vectors.vectors)
        assert bool(np.isfinite(vectors.vectors).all()) and len(set(vectors.index_to_key)) == len(vectors.vectors)

    return read


def _vector_header(data: bytes, rng: random.Random) -> bytes:
    _, _, rest = data.partition(b"\n")
    header = rng.choice([b"100000000000 300", b"1 100000000000", b"5 100000000", b"-5 4", b"5 0", b"5 4 4", b"9e9 4"])
    return header + b"\n" + rest


# sentence datasets
def _build_sentences(folder: Path) -> list[Path]:
    files = {
        "sst2/stsa.binary.train": "1 a gripping , funny film\n0 dull and far too long\n1 warm\n",
        "sst2/stsa.binary.dev": "0 not good\n1 very good\n",
        "sst2/stsa.binary.test": "1 lovely\n0 awful , truly\n",
        "mr/rt-polarity.neg": "simplistic , silly and tedious .\nit's so laddish and juvenile .\n",
        "mr/rt-polarity.pos": "the rock is destined to be great .\nan engrossing film .\n",
        "trec/TREC.train": "DESC:manner How did serfdom develop ?\nHUM:ind Who killed Gandhi ?\n",
        "trec/TREC.test": "NUM:date When did Hawaii become a state ?\nLOC:city What is the capital of Peru ?\n",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in files]


def _read_sentences(root: Path) -> None:
    from cnnlab.text.datasets import load_dataset

    for name in ("sst2", "mr", "trec"):
        dataset = load_dataset(name, root)
        assert len(dataset.sentences) == len(dataset.labels)
        assert all(0 <= int(label) < len(dataset.classes) for label in dataset.labels)
        assert all(isinstance(s, list) and all(isinstance(t, str) for t in s) for s in dataset.sentences)


def _sentence_header(data: bytes, rng: random.Random) -> bytes:
    return rng.choice([b"7 ", b"-1 ", b"99999999999999999999 ", b"XYZ:abc ", b"\xff\xfe "]) + data


# ISBI slices
def _build_isbi(folder: Path) -> list[Path]:
    import numpy as np

    rng = np.random.default_rng(6)
    paths = []
    for kind in ("image", "label"):
        for i in range(30):
            path = folder / "isbi2012" / "train" / kind / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png_bytes(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
            paths.append(path)
    return paths


def _read_isbi(root: Path) -> None:
    import numpy as np

    from cnnlab.segment.data import load_isbi2012

    images, cells = load_isbi2012(root, "train")
    assert images.dtype == np.uint8 and images.ndim == 3 and len(images) == 30
    assert cells.dtype == bool and cells.shape == images.shape


# checkpoints
def _build_checkpoint(folder: Path) -> list[Path]:
    import torch

    from cnnlab.checkpoint import save_checkpoint

    tensors = {"model.conv.weight": torch.randn(4, 3, 3, 3), "model.bn.num_batches_tracked": torch.tensor(7),
               "optim.0.momentum_buffer": torch.zeros(4, 3, 3, 3), "rng.torch": torch.get_rng_state()}
    meta = {"step": 12, "epoch": 1, "config": {"model": "resnet20", "lr": 0.1}, "metrics": {"error": 0.5}}
    record = save_checkpoint(folder, "last", tensors, meta)
    tensors_file = folder / json.loads(record.read_text())["tensors"]
    return [record, tensors_file]


def _read_checkpoint(root: Path) -> None:
    import torch

    from cnnlab.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(root / "last.json")
    assert isinstance(checkpoint.meta, dict) and isinstance(checkpoint.step, int)
    assert all(isinstance(t, torch.Tensor) for t in checkpoint.tensors.values())


def _json_types(data: bytes, rng: random.Random) -> bytes:
    """A checkpoint record with one field given a value of another type."""
    try:
        meta = json.loads(data)
    except ValueError:
        return data
    key = rng.choice(["tensors", "sha256", "format_version", "step", "format", "config", "tensors"])
    meta[key] = rng.choice([None, 7, -1, 1.5, "x", "", "..", "/etc/passwd", [], {}, True, 2**70, "1" * 64])
    return json.dumps(meta).encode()


READERS = [
    Reader("idx", lambda f: _build_idx(f, False), _read_mnist, _idx_header),
    Reader("idx-gz", lambda f: _build_idx(f, True), _read_mnist, _idx_header),
    Reader("cifar-python", _build_cifar_python, _read_cifar10, _pickle_header),
    Reader("cifar-binary", _build_cifar_binary, _read_cifar10),
    Reader("jpeg-shards", _build_jpeg_shards, _read_cifar10, _tar_header),
    Reader("image-folder", _build_image_folder, _read_image_folder, _png_header),
    Reader("word2vec-text", lambda f: _build_vectors(f, False), _read_vectors(False), _vector_header),
    Reader("word2vec-binary", lambda f: _build_vectors(f, True), _read_vectors(True), _vector_header),
    Reader("word2vec-detect", lambda f: _build_vectors(f, True), _read_vectors(None), _vector_header),
    Reader("sentences", _build_sentences, _read_sentences, _sentence_header),
    Reader("isbi", _build_isbi, _read_isbi, _png_header),
    Reader("checkpoint", _build_checkpoint, _read_checkpoint, _json_types),
]


# --- mutations --------------------------------------------------------------------------------------


def _mutate(data: bytes, rng: random.Random, reader: Reader) -> tuple[str, bytes]:
    kinds = ["garbage", "truncate", "flip", "flip", "flip", "huge"]
    kind = rng.choice(kinds)
    if kind == "garbage":
        length = rng.choice([0, 1, 7, 100, len(data), 3 * len(data)])
        prefix = data[: rng.choice([0, 0, 2, 8])]  # sometimes keep the magic number
        return kind, prefix + rng.randbytes(length)
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data) + 1)]
    if kind == "flip":
        mutated = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 8, 32])):
            if mutated:
                mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        return kind, bytes(mutated)
    if reader.header is not None and rng.random() < 0.7:
        return "header", reader.header(data, rng)
    # Generic huge size: four bytes near the start set to a huge big- or little-endian number.
    mutated = bytearray(data)
    if len(mutated) >= 4:
        at = rng.randrange(min(len(mutated) - 3, 64))
        mutated[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\xff\xff\xff\x7f"])
    return "huge", bytes(mutated)


@dataclass
class Outcome:
    reader: str
    case: int
    kind: str
    file: str
    result: str  # "accepted", "refused" or "FAIL: ..."


def _run_case(reader: Reader, case: int, workdir: Path, base: Path, targets: list[Path], rng: random.Random) -> Outcome:
    from cnnlab.errors import CnnlabError

    folder = workdir / f"{reader.name}-{case}"
    shutil.copytree(base, folder)
    target = folder / rng.choice(targets).relative_to(base)
    kind, mutated = _mutate(target.read_bytes(), rng, reader)
    if reader.name == "checkpoint" and target.suffix == ".safetensors" and rng.random() < 0.5:
        # Keep the record's hash consistent, so the damage reaches the safetensors parser.
        import hashlib

        record = folder / "last.json"
        meta = json.loads(record.read_text())
        meta["sha256"] = hashlib.sha256(mutated).hexdigest()
        record.write_text(json.dumps(meta))
        kind += "+hash"
    target.write_bytes(mutated)
    outcome = Outcome(reader.name, case, kind, str(target.relative_to(folder)), "accepted")
    signal.alarm(CASE_TIMEOUT_S)
    try:
        reader.read(folder)
    except (CnnlabError, FileNotFoundError) as err:
        message = str(err)
        if target.name not in message:
            outcome.result = f"FAIL: the error does not name {target.name}: {message[:300]}"
        elif "\n" in message:
            outcome.result = f"FAIL: the error is not one line: {message[:300]}"
        else:
            outcome.result = "refused"
    except AssertionError:
        outcome.result = f"FAIL: accepted invalid data: {traceback.format_exc(limit=-2)[-600:]}"
    except BaseException as err:  # noqa: BLE001 - any other exception, a hang or MemoryError breaks the property
        outcome.result = f"FAIL: {type(err).__name__}: {str(err)[:300]} at {traceback.format_exc(limit=-3)[-800:]}"
    finally:
        signal.alarm(0)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError(f"a case ran over {CASE_TIMEOUT_S} s")


def _cap_memory() -> int | None:
    import resource

    try:
        with open("/proc/self/status") as status:
            vm_size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None  # no /proc (not Linux): the declared-size checks alone bound memory
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    limit = vm_size + MEMORY_BOUND if hard == resource.RLIM_INFINITY else min(vm_size + MEMORY_BOUND, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def run_fuzz(seed: int, cases: int, workdir: Path) -> list[Outcome]:
    """Runs ``cases`` damaged inputs per reader (in this process: cap its memory first)."""
    import logging
    import warnings

    import torch

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    os.environ["CNNLAB_CACHE"] = str(workdir / "cache")
    signal.signal(signal.SIGALRM, _on_alarm)
    outcomes = []
    for index, reader in enumerate(READERS):
        rng = random.Random(seed * 1000 + index)
        base = workdir / f"base-{reader.name}"
        base.mkdir()
        targets = reader.build(base)
        reader.read(base)  # the valid layout itself must load
        for case in range(cases):
            outcomes.append(_run_case(reader, case, workdir, base, targets, rng))
    return outcomes


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cases", type=int, default=CASES_PER_READER)
    parser.add_argument("--json", action="store_true", help="print one JSON summary line")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import numpy  # noqa: F401 - imported before the cap, as the readers would be
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    import cnnlab.data  # noqa: F401
    import cnnlab.segment.data  # noqa: F401
    import cnnlab.text.datasets  # noqa: F401
    import cnnlab.text.vectors  # noqa: F401
    import cnnlab.checkpoint  # noqa: F401

    limit = _cap_memory()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnlab-fuzz-") as tmp:
        outcomes = run_fuzz(args.seed, args.cases, Path(tmp))
    seconds = time.perf_counter() - start
    failures = [o for o in outcomes if o.result.startswith("FAIL")]
    counts = {r: sum(o.result == r for o in outcomes) for r in ("accepted", "refused")}
    if args.json:
        print(json.dumps({"cases": len(outcomes), "seconds": round(seconds, 1), "memory_cap": limit, **counts,
                          "failures": [o.__dict__ for o in failures]}))
    else:
        for o in failures:
            print(f"{o.reader} #{o.case} ({o.kind} {o.file}): {o.result}")
        print(f"{len(outcomes)} cases in {seconds:.1f} s: {counts['accepted']} accepted, {counts['refused']} "
              f"refused, {len(failures)} failures")
    return 1 if failures else 0


def test_every_reader_survives_hostile_files() -> None:
    """Seeded fuzz of every reader in a memory-capped child process (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, __file__, "--json"], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode in (0, 1) and lines, f"the fuzz worker crashed:\n{result.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    assert summary["cases"] == len(READERS) * CASES_PER_READER
    assert summary["memory_cap"] or not sys.platform.startswith("linux"), "the memory cap was not set"
    failures = "\n".join(f"{f['reader']} #{f['case']} ({f['kind']} {f['file']}): {f['result']}"
                         for f in summary["failures"])
    assert not summary["failures"], f"{len(summary['failures'])} of {summary['cases']} cases failed:\n{failures}"
    # Both outcomes occur: the fuzzer is neither refusing everything nor damaging nothing.
    assert summary["refused"] > summary["cases"] // 3 and summary["accepted"] > 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
