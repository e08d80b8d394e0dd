"""Regression tests for issue 13 (items 5-8, readers) and issue 11 item 7 (one data root, one cache).

Each test holds one promise that failed before its fix: a header may not
declare more than the file holds, every error is a CnnlabError naming the file
(and line), images are not silently clipped, and nothing planted in the cache
is ever loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import cache_root, data_root, load_dataset
from cnnlab.data.cifar import read_python_batch
from cnnlab.data.idx import read_idx
from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.segment.data import find_isbi2012, read_grey
from cnnlab.text import datasets as text_datasets
from cnnlab.text.vectors import KeyedVectors


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CNNLAB_CACHE", str(cache))
    return cache


def _one_line(err: pytest.ExceptionInfo, name: str) -> str:
    message = str(err.value)
    assert "\n" not in message and name in message, message
    return message


# --- issue 11 item 7: one data root, one cache root --------------------------------------------


def test_text_and_isbi_readers_use_the_one_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sst2").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "sst2" / f"stsa.binary.{split}").write_text("1 a fine film\n0 a dull one\n")
    (tmp_path / "isbi2012" / "train" / "image").mkdir(parents=True)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    assert len(text_datasets.load_dataset("sst2").sentences) == 6  # no data_dir: $CNNLAB_DATA
    assert find_isbi2012() == tmp_path / "isbi2012"
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "home" / ".cache" / "cnnlab")):
        find_isbi2012()
    assert data_root() == tmp_path / "home" / ".cache" / "cnnlab"


def test_the_cache_is_one_folder(private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_root() == private_cache
    monkeypatch.delenv("CNNLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "cnnlab" / "cache"


# --- word2vec files -------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_header_declaring_terabytes_is_a_one_line_error(tmp_path: Path, binary: bool) -> None:
    path = tmp_path / "huge.vec"
    body = b"a " + (np.ones(300, "<f4").tobytes() + b"\n" if binary else b" ".join([b"1"] * 300) + b"\n")
    path.write_bytes(b"100000000000 300\n" + body)
    with pytest.raises(CnnlabError) as err:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert "ends after 1 of 100000000000" in _one_line(err, "huge.vec")
    path.write_bytes(b"1 100000000000\n" + body)
    with pytest.raises(CnnlabError, match="dimension 100,000,000,000") as err:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    _one_line(err, "huge.vec")


def test_vector_file_errors_name_the_line(tmp_path: Path) -> None:
    from cnnlab.text.vectors import is_binary_vectors

    path = tmp_path / "v.txt"
    path.write_bytes(b"2 2\nok 1 2\ncaf\xe9 3 4\n")
    assert not is_binary_vectors(path)  # one Latin-1 word does not make a text file binary
    with pytest.raises(CnnlabError, match=r"v.txt:3: not UTF-8 \(byte 0xe9 at column 4\)"):
        KeyedVectors.load_word2vec_format(path)
    assert KeyedVectors.load_word2vec_format(path, unicode_errors="replace").index_to_key == ["ok", "caf\ufffd"]
    path.write_bytes(b"2 2\na 1 2\na 3 4\n")
    with pytest.raises(CnnlabError, match="v.txt:3: the word 'a' appears twice"):
        KeyedVectors.load_word2vec_format(path)


@pytest.mark.parametrize("binary", [False, True])
def test_non_finite_vectors_are_refused(tmp_path: Path, binary: bool) -> None:
    path = tmp_path / "v.vec"
    vectors = torch.ones(3, 4)
    vectors[1, 2] = float("nan")
    KeyedVectors(["a", "b", "c"], vectors).save_word2vec_format(path, binary=binary)
    where = "word 2" if binary else "v.vec:3"
    with pytest.raises(CnnlabError, match=f"{where}: the vector of 'b' holds NaN or infinite values"):
        KeyedVectors.load_word2vec_format(path)  # format detected, not given


@pytest.mark.parametrize("binary", [False, True])
def test_format_is_detected_from_content(tmp_path: Path, binary: bool) -> None:
    from cnnlab.text.vectors import is_binary_vectors

    path = tmp_path / "v"
    words = ["the", "café", "naïve", "x", "\u00e9t\u00e9"]
    KeyedVectors(words, torch.randn(5, 8)).save_word2vec_format(path, binary=binary)
    assert is_binary_vectors(path) == binary
    assert KeyedVectors.load_word2vec_format(path).index_to_key == words


# --- IDX and gzip --------------------------------------------------------------------------------


def _idx_labels(values: bytes) -> bytes:
    return struct.pack(">HBBI", 0, 0x08, 1, len(values)) + values


def test_gzip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    # 10 declared labels followed by 256 MB of zeros: about 250 KB compressed.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(_idx_labels(bytes(10)))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(256)]
    bomb = tmp_path / "bomb-idx1-ubyte.gz"
    bomb.write_bytes(b"".join(parts) + compressor.flush())
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CnnlabError, match="more than the 18 bytes its header declares") as err:
            read_idx(bomb, 2049)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _one_line(err, "bomb-idx1-ubyte.gz")
    assert peak < 16 << 20  # the whole file is read (~250 KB), the stream never inflated past the header
    # A header declaring 2 GB in a tiny file is refused by deflate's ratio, before inflating anything.
    liar = tmp_path / "liar.gz"
    liar.write_bytes(gzip.compress(struct.pack(">HBBII", 0, 0x08, 2, 1 << 16, 1 << 15)))
    with pytest.raises(CnnlabError, match="more than .* compressed bytes can hold"):
        read_idx(liar)


def test_damaged_gzip_is_a_cnnlab_error_naming_the_file(tmp_path: Path) -> None:
    good = gzip.compress(_idx_labels(bytes(range(10)) * 100))
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    path = tmp_path / "labels.gz"
    path.write_bytes(bytes(damaged))
    with pytest.raises(CnnlabError) as err:
        read_idx(path)
    assert "corrupt gzip stream" in _one_line(err, "labels.gz")
    assert not isinstance(err.value.__cause__, zlib.error)


# --- CIFAR ---------------------------------------------------------------------------------------


class _HugeArray:
    def __reduce__(self) -> tuple:
        return (np.ndarray, ((1_300_000, 3072), np.dtype("u1")))


def test_cifar_unpickler_refuses_arrays_larger_than_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _HugeArray(), b"labels": [0]}, protocol=2))
    assert path.stat().st_size < 200
    tracemalloc.start()
    try:
        with pytest.raises(CnnlabError, match="cannot come from a file of this size") as err:
            read_python_batch(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _one_line(err, "data_batch_1")
    assert peak < 1 << 20


def _python3_cifar(root: Path, protocol: int, labels: list[int]) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.arange(4 * 3072, dtype=np.uint64).astype(np.uint8).reshape(4, 3072)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=protocol))
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=protocol))
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes((folder / "test_batch").read_bytes())


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_python3_cifar_pickles_are_accepted(tmp_path: Path, protocol: int) -> None:
    _python3_cifar(tmp_path, protocol, [0, 1, 9, 3])
    dataset = load_dataset("cifar10", "test", tmp_path)
    assert dataset.labels.tolist() == [0, 1, 9, 3] and dataset.classes[9] == "class9"
    assert dataset.images.shape == (4, 3, 32, 32) and int(dataset.images[0, 0, 0, 5]) == 5


def test_cifar_labels_out_of_range_name_the_file(tmp_path: Path) -> None:
    _python3_cifar(tmp_path / "py", 2, [0, 1, 10, 3])
    with pytest.raises(CnnlabError, match="test_batch: label 10 is outside 0..9"):
        load_dataset("cifar10", "test", tmp_path / "py")
    folder = tmp_path / "bin" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    (folder / "test_batch.bin").write_bytes(bytes([12]) + bytes(3072))
    (folder / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    with pytest.raises(CnnlabError, match="test_batch.bin: label 12 is outside 0..9"):
        load_dataset("cifar10", "test", tmp_path / "bin")


# --- images --------------------------------------------------------------------------------------


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def test_decompression_bombs_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _png(tmp_path / "train" / "a" / "big.png", np.zeros((40, 40), np.uint8))
    # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; both are refused.
    for limit in (1000, 500):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(CnnlabError, match="decompression bomb") as err:
            load_dataset(f"folder:{tmp_path}", "train")
        _one_line(err, "big.png")
        with pytest.raises(CnnlabError, match="decompression bomb") as err:
            read_grey(tmp_path / "train" / "a" / "big.png")
        _one_line(err, "big.png")


def test_only_raster_formats_are_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: calls.append(args))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n0 0 moveto showpage\n"
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "0.png").write_bytes(eps)
    with pytest.raises(CnnlabError, match="0.png: not an image in a format cnnlab reads"):
        load_dataset(f"folder:{tmp_path}", "train")
    with pytest.raises(CnnlabError, match="0.png"):
        read_grey(tmp_path / "train" / "a" / "0.png")
    assert calls == []  # Ghostscript was never asked to run the file


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    _png(tmp_path / "train" / "a" / "0.png", wide)
    expected = [[0, 1, 128, 255]]
    assert read_grey(tmp_path / "train" / "a" / "0.png").tolist() == expected
    dataset = load_dataset(f"folder:{tmp_path}", "train")
    assert dataset.images[0, 0].tolist() == expected


def test_a_split_missing_a_class_keeps_the_labels_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for split, classes in (("train", ("ant", "bee", "cat")), ("test", ("ant", "cat"))):
        for c in classes:
            _png(tmp_path / split / c / "0.png", np.full((2, 2), ord(c[0]), np.uint8))
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        train = load_dataset(f"folder:{tmp_path}", "train")
        test = load_dataset(f"folder:{tmp_path}", "test")
    assert train.classes == test.classes == ["ant", "bee", "cat"]
    assert test.labels.tolist() == [0, 2]  # cat is still class 2, not 1
    assert "test has no images of class(es) bee, which the train split has" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        assert load_dataset(f"folder:{tmp_path}", "test").labels.tolist() == [0, 2]  # from the cache
    assert "class(es) bee" in caplog.text


def test_folder_without_a_path_is_a_one_line_error() -> None:
    for name in ("folder:", "folder:  "):
        with pytest.raises(CnnlabError, match="'folder:' needs the path"):
            load_dataset(name, "train")
    with pytest.raises(CnnlabError, match="must be a name"):
        load_dataset({"folder": None}, "train")  # what YAML makes of "folder:"


def test_isbi_slices_of_another_size_name_the_file(tmp_path: Path) -> None:
    for i in range(30):
        _png(tmp_path / "train" / "image" / f"{i}.png", np.zeros((8, 8) if i != 7 else (8, 9), np.uint8))
        _png(tmp_path / "train" / "label" / f"{i}.png", np.zeros((8, 8), np.uint8))
    from cnnlab.segment.data import load_isbi2012

    with pytest.raises(CnnlabError, match="7.png is 9x8 but .*0.png is 8x8"):
        load_isbi2012(tmp_path)


# --- sentence datasets ---------------------------------------------------------------------------


def test_sentence_labels_out_of_range_are_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "sst2").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "sst2" / f"stsa.binary.{split}").write_text("1 good\n\n0 bad\n")
    (tmp_path / "sst2" / "stsa.binary.dev").write_text("1 good\n\n7 what\n")
    with pytest.raises(CnnlabError) as err:
        text_datasets.load_dataset("sst2", tmp_path)
    assert "stsa.binary.dev:3: label 7 is outside 0..1" in _one_line(err, "stsa.binary.dev")
    (tmp_path / "sst2" / "stsa.binary.dev").write_text("-1 negative one\n")
    with pytest.raises(CnnlabError, match="stsa.binary.dev:1: label -1 is outside 0..1"):
        text_datasets.load_dataset("sst2", tmp_path)


# --- stale temporaries ---------------------------------------------------------------------------


def test_remove_stale_temporaries_removes_only_cnnlab_temporaries(tmp_path: Path) -> None:
    from cnnlab.files import remove_stale_temporaries

    atomic_write(tmp_path / "last.json", b"{}")
    orphans = [tmp_path / ".tensors-0123456789abcdef.safetensors.k3j_9x2a.tmp", tmp_path / ".last.json.abcdefgh.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / ".x.toolong123.tmp", tmp_path / "last.json",
            tmp_path / ".last.json.ABCDEFGH.tmp"]
    for path in orphans + keep:
        path.write_bytes(b"x")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    (tmp_path / ".link.abcdefgh.tmp").symlink_to(tmp_path / "last.json")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(orphans)
    assert all(p.exists() for p in keep) and (tmp_path / ".dir.abcdefgh.tmp").is_dir()
    assert (tmp_path / ".link.abcdefgh.tmp").is_symlink()
    young = tmp_path / ".last.json.zzzzzzzz.tmp"
    young.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, min_age_s=3600) == [] and young.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_atomic_write_temporaries_match_the_cleanup_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_replace = os.replace

    def spy(src: str, dst: Path) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write(tmp_path / "tensors-00.safetensors", b"x")
    from cnnlab.files import TEMP_NAME

    assert len(seen) == 1 and TEMP_NAME.match(seen[0])


# --- checkpoints ---------------------------------------------------------------------------------


def _checkpoint(tmp_path: Path) -> Path:
    from cnnlab.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path, "last", {"model.w": torch.ones(3)}, {"step": 4})


def test_damaged_tensors_with_a_consistent_hash_are_a_cnnlab_error(tmp_path: Path) -> None:
    from cnnlab.checkpoint import load_checkpoint

    record = _checkpoint(tmp_path)
    meta = json.loads(record.read_text())
    tensors = tmp_path / meta["tensors"]
    damaged = b"\xff" * 8 + tensors.read_bytes()[8:]
    tensors.write_bytes(damaged)
    meta["sha256"] = hashlib.sha256(damaged).hexdigest()
    record.write_text(json.dumps(meta))
    with pytest.raises(CnnlabError, match="not a valid safetensors file") as err:
        load_checkpoint(record)
    _one_line(err, tensors.name)


@pytest.mark.parametrize("key, value", [("tensors", 7), ("sha256", None), ("format_version", "1"), ("step", "4"),
                                        ("tensors", "")])
def test_checkpoint_fields_of_the_wrong_type_are_cnnlab_errors(tmp_path: Path, key: str, value: object) -> None:
    from cnnlab.checkpoint import load_checkpoint

    record = _checkpoint(tmp_path)
    meta = json.loads(record.read_text())
    meta[key] = value
    record.write_text(json.dumps(meta))
    with pytest.raises(CnnlabError) as err:
        load_checkpoint(record)
    _one_line(err, "last.json")


def test_checkpoint_json_with_deep_nesting_or_pickle_is_a_cnnlab_error(tmp_path: Path) -> None:
    from cnnlab.checkpoint import load_checkpoint

    record = tmp_path / "last.json"
    record.write_bytes(b"[" * 100_000)
    with pytest.raises(CnnlabError, match="last.json"):
        load_checkpoint(record)
    record.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CnnlabError, match="pickle payload"):
        load_checkpoint(record)
    record.write_bytes(b"9" * 10_000)  # an integer too long for Python to parse
    with pytest.raises(CnnlabError, match="last.json"):
        load_checkpoint(record)
