"""Dataset readers: digits, IDX, CIFAR (python, binary, JPEG shards), image folders, the cache."""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from cnnlab.data import DATASET_NAMES, ImageDataset, data_root, load_dataset
from cnnlab.data.cifar import CIFAR10_CLASSES, CifarBatchUnpickler, read_python_batch
from cnnlab.data.idx import read_idx


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty dataset cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CNNLAB_CACHE", str(cache))
    return cache


# --- ImageDataset, data_root, names -------------------------------------------------------


def test_image_dataset_checks_types_and_moves() -> None:
    images, labels = torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 0])
    dataset = ImageDataset(images, labels, ["a", "b"], "toy")
    assert len(dataset) == 3
    moved = dataset.to("meta")
    assert moved.images.device.type == "meta" and moved.labels.device.type == "meta"
    assert dataset.images.device.type == "cpu"
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), labels, ["a", "b"], "toy")
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(images, labels[:2], ["a", "b"], "toy")


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    assert data_root() == Path("~/.cache/cnnlab").expanduser()
    assert data_root(None, tmp_path / "run's") == tmp_path / "run's", "a run's recorded folder before the default"
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(None, tmp_path / "run's") == tmp_path / "env", "the variable where the run's folder is gone"
    (tmp_path / "run's").mkdir()
    assert data_root(None, tmp_path / "run's") == tmp_path / "run's", "the run's own data while it exists"
    assert data_root(tmp_path / "flag", tmp_path / "run's") == tmp_path / "flag"


def test_unknown_name_split_and_policy_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="digits, mnist, fashion-mnist, cifar10, cifar100, folder:PATH"):
        load_dataset("imagenet", "train")
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match="error, skip"):
        load_dataset("digits", "train", on_corrupt="ignore")
    assert "digits" in DATASET_NAMES


# --- digits -------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_complete() -> None:
    from sklearn.datasets import load_digits

    target = load_digits().target
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1442, 1, 8, 8) and test.images.shape == (355, 1, 8, 8)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    # Every class is split 4:1 (to within one image).
    per_class = torch.from_numpy(np.bincount(target))
    assert torch.equal(test.labels.bincount(), per_class // 5)
    assert torch.equal(train.labels.bincount() + test.labels.bincount(), per_class)
    # The split is the same on every call, and train and test do not share images.
    assert torch.equal(load_dataset("digits", "test").images, test.images)
    train_rows = {bytes(x) for x in train.images.flatten(1).numpy()}
    overlap = sum(bytes(x) in train_rows for x in test.images.flatten(1).numpy())
    assert overlap <= 3  # the digits set itself holds a few identical bitmaps


# --- IDX (MNIST, Fashion-MNIST) -------------------------------------------------------------


def test_mnist_and_fashion_from_real_files(data_dir: Path) -> None:
    mnist = load_dataset("mnist", "train", data_dir)
    assert mnist.images.shape == (60000, 1, 28, 28) and mnist.images.dtype == torch.uint8
    # Class counts published with the data (see shared/data/README.md).
    expected = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.labels.bincount().tolist() == expected
    fashion = load_dataset("fashion-mnist", "test", data_dir)
    assert fashion.images.shape == (10000, 1, 28, 28)
    assert fashion.labels.bincount().tolist() == [1000] * 10
    assert fashion.classes[9] == "Ankle boot"


def test_idx_raw_equals_gzip_and_bad_files_are_refused(data_dir: Path, tmp_path: Path) -> None:
    gz = data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    assert np.array_equal(read_idx(raw, 2049), read_idx(gz, 2049))
    with pytest.raises(ValueError, match="magic number 2049 \\(expected 2051\\)"):
        read_idx(raw, 2051)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated, 2049)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gz.read_bytes()[:100])
    with pytest.raises(ValueError, match="broken.gz"):
        read_idx(broken_gz, 2049)


def test_mnist_raw_layout_and_missing_files(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / stem).write_bytes(gzip.decompress((data_dir / "mnist" / f"{stem}.gz").read_bytes()))
    from_raw = load_dataset("mnist", "test", tmp_path)
    assert torch.equal(from_raw.images, load_dataset("mnist", "test", data_dir).images)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz.*cnnlab download mnist"):
        load_dataset("mnist", "train", tmp_path)


# --- CIFAR: the restricted unpickler --------------------------------------------------------


class _Exploit:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "data_batch_1"
    payload.write_bytes(pickle.dumps({b"data": _Exploit(marker)}, protocol=4))
    with pytest.raises(ValueError, match="refusing to load (posix|os|nt).system"):
        read_python_batch(payload)
    assert not marker.exists()
    # Object arrays would unpickle arbitrary elements: refused too.
    objects = tmp_path / "objects"
    objects.write_bytes(pickle.dumps({b"data": np.array([None, 1], dtype=object)}, protocol=4))
    with pytest.raises(ValueError, match="objects"):
        read_python_batch(objects)
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        CifarBatchUnpickler(io.BytesIO(pickle.dumps(eval, protocol=4))).load()


def test_unpickler_reads_the_real_python2_meta_file(data_dir: Path) -> None:
    meta = read_python_batch(data_dir / "cifar10-sample" / "batches.meta")
    assert [name.decode() for name in meta[b"label_names"]] == CIFAR10_CLASSES
    assert meta[b"num_vis"] == 3072


# --- CIFAR: python and binary versions built from the real sample ----------------------------

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(scope="module")
def cifar_sample(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The real sample: per batch, its first 164 images and their labels."""
    with np.load(data_dir / "cifar10-sample" / "cifar10_batch_prefixes.npz") as npz:
        return {b: (npz[f"{b}_data"], npz[f"{b}_labels"][:164].astype(np.int64)) for b in BATCHES}


def _py2_string(value: bytes) -> bytes:
    return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<I", len(value)) + value


def _py2_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _py2_batch_pickle(batch_label: bytes, labels: np.ndarray, data: np.ndarray) -> bytes:
    """The opcodes Python 2's cPickle (protocol 2) and NumPy 1.x wrote for a CIFAR batch.

    Python 3 cannot write Python 2 strings, so the stream is assembled by hand:
    a dict of str keys, a list of ints, and an ndarray rebuilt by
    ``numpy.core.multiarray._reconstruct`` plus ``__setstate__``.
    """
    dtype = (
        b"cnumpy\ndtype\n" + _py2_string(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
        + b"(" + _py2_int(3) + _py2_string(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_string(b"b") + b"\x87R"
        + b"(" + _py2_int(1) + _py2_int(data.shape[0]) + _py2_int(data.shape[1]) + b"\x86"
        + dtype + b"\x89" + _py2_string(data.tobytes()) + b"tb"
    )
    label_list = b"](" + b"".join(_py2_int(int(v)) for v in labels) + b"e"
    items = (
        _py2_string(b"batch_label") + _py2_string(batch_label)
        + _py2_string(b"labels") + label_list
        + _py2_string(b"data") + array
    )
    return b"\x80\x02}(" + items + b"u."


def _write_python_version(root: Path, sample: dict, meta: Path) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for batch, (data, labels) in sample.items():
        (folder / batch).write_bytes(_py2_batch_pickle(batch.encode(), labels, data))
    shutil.copy(meta, folder / "batches.meta")


def _write_binary_version(root: Path, sample: dict) -> None:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for batch, (data, labels) in sample.items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        (folder / f"{batch}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")


def test_cifar10_python_and_binary_agree_with_the_sample(cifar_sample: dict, data_dir: Path, tmp_path: Path) -> None:
    _write_python_version(tmp_path / "py", cifar_sample, data_dir / "cifar10-sample" / "batches.meta")
    _write_binary_version(tmp_path / "bin", cifar_sample)
    from_python = load_dataset("cifar10", "train", tmp_path / "py")
    from_binary = load_dataset("cifar10", "train", tmp_path / "bin")
    assert from_python.images.shape == (820, 3, 32, 32) and from_python.classes == CIFAR10_CLASSES
    assert torch.equal(from_python.images, from_binary.images)
    assert torch.equal(from_python.labels, from_binary.labels)
    # Channel means of the 820 sampled training images, per the data README.
    means = from_python.images.double().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.491, 0.478, 0.438], dtype=torch.float64), atol=5e-4)
    test = load_dataset("cifar10", "test", tmp_path / "py")
    assert test.labels[:5].tolist() == [3, 8, 8, 0, 6]  # cat, ship, ship, airplane, frog
    # Red plane of the first test image = the first 1,024 bytes of its row.
    assert torch.equal(test.images[0, 0].flatten(), torch.from_numpy(cifar_sample["test_batch"][0][0, :1024]))


def test_cifar_binary_truncated_is_refused(cifar_sample: dict, tmp_path: Path) -> None:
    _write_binary_version(tmp_path, cifar_sample)
    test_file = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    test_file.write_bytes(test_file.read_bytes()[:-100])
    with pytest.raises(ValueError, match="test_batch.bin.*truncated"):
        load_dataset("cifar10", "test", tmp_path)


def test_cifar100_fine_labels_in_both_versions(cifar_sample: dict, tmp_path: Path) -> None:
    data, labels = cifar_sample["test_batch"]
    fine, coarse = labels * 10 + 7, labels  # made-up but distinct coarse/fine labels
    fine_names = [f"fine{i}" for i in range(100)]
    py = tmp_path / "py" / "cifar-100-python"
    py.mkdir(parents=True)
    batch = {b"data": data, b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()}
    # Protocol 4, as NumPy 2 under Python 3 pickles (numpy._core.multiarray).
    (py / "test").write_bytes(pickle.dumps(batch, protocol=4))
    (py / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in fine_names]}, protocol=4))
    binary = tmp_path / "bin" / "cifar-100-binary"
    binary.mkdir(parents=True)
    records = np.concatenate([coarse.astype(np.uint8)[:, None], fine.astype(np.uint8)[:, None], data], axis=1)
    (binary / "test.bin").write_bytes(records.tobytes())
    (binary / "fine_label_names.txt").write_text("\n".join(fine_names))
    for root in (tmp_path / "py", tmp_path / "bin"):
        dataset = load_dataset("cifar100", "test", root)
        assert dataset.labels.tolist() == fine.tolist() and dataset.classes == fine_names
        assert dataset.images.shape == (164, 3, 32, 32)


def test_cifar_missing_names_every_form(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", "test", tmp_path)
    message = str(err.value)
    assert "test_batch" in message and "cifar-10-batches-bin" in message and "cifar10-jpg" in message
    assert "cifar-10-python.tar.gz" in message


# --- CIFAR-10 JPEG shards and the cache ------------------------------------------------------


def _copy_members(source: Path, dest: Path, count: int) -> list[str]:
    names = []
    with tarfile.open(source) as src, tarfile.open(dest, "w") as out:
        for member in src:
            if len(names) == count:
                break
            out.addfile(member, src.extractfile(member))
            names.append(member.name)
    return names


def test_cifar10_jpeg_shards_decode_and_cache(
    data_dir: Path, cifar_sample: dict, tmp_path: Path, private_cache: Path
) -> None:
    shards = tmp_path / "cifar10-jpg"
    shards.mkdir()
    names = _copy_members(data_dir / "cifar10-jpg" / "test-000.tar", shards / "test-000.tar", 300)
    dataset = load_dataset("cifar10", "test", tmp_path)
    assert dataset.images.shape == (300, 3, 32, 32) and dataset.classes == CIFAR10_CLASSES
    assert [dataset.classes[i] for i in dataset.labels] == [Path(n).parent.name for n in names]
    # test/cat/0000.jpg is a lossy copy of the first test image (a cat): PSNR well above
    # what two different images give (the data README measured 23.7-38.8 dB vs <= 17 dB).
    cat = dataset.images[names.index("test/cat/0000.jpg")].double()
    original = torch.from_numpy(cifar_sample["test_batch"][0][0].reshape(3, 32, 32)).double()
    psnr = 10 * torch.log10(255**2 / (cat - original).pow(2).mean())
    assert psnr > 23
    assert len(list(private_cache.glob("*.safetensors"))) == 1
    # A second load reads the cache: decoding is not called at all.
    from cnnlab.data import folder

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    original_decode = folder._decode
    folder._decode = no_decoding
    try:
        again = load_dataset("cifar10", "test", tmp_path)
    finally:
        folder._decode = original_decode
    assert torch.equal(again.images, dataset.images) and again.name == "cifar10/test"
    # Changing a source changes the key: the next load decodes the new content.
    _copy_members(data_dir / "cifar10-jpg" / "test-000.tar", shards / "test-000.tar", 120)
    assert len(load_dataset("cifar10", "test", tmp_path)) == 120


# --- image folders ---------------------------------------------------------------------------


def _save(path: Path, array: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def test_folder_reads_classes_pixels_and_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = {f"{c}/{i}.png": rng.integers(0, 256, (6, 5), dtype=np.uint8) for c in ("cats", "ants") for i in range(3)}
    for name, array in grey.items():
        _save(tmp_path / "grey" / "train" / name, array)
    dataset = load_dataset(f"folder:{tmp_path / 'grey'}", "train")
    assert dataset.classes == ["ants", "cats"] and dataset.images.shape == (6, 1, 6, 5)
    expected = [grey[n] for n in sorted(grey)]  # files are read in sorted order
    assert all(np.array_equal(dataset.images[i, 0].numpy(), a) for i, a in enumerate(expected))
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 1]
    # One colour image makes the whole dataset RGB; greys are repeated on 3 channels.
    _save(tmp_path / "grey" / "train" / "cats" / "colour.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    mixed = load_dataset(f"folder:{tmp_path / 'grey'}", "train")
    assert mixed.images.shape == (7, 3, 6, 5)
    assert torch.equal(mixed.images[0, 0], mixed.images[0, 2])


def test_folder_sizes_must_agree_unless_resized(tmp_path: Path) -> None:
    _save(tmp_path / "test" / "a" / "small.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "test" / "b" / "wide.png", np.full((10, 20), 200, np.uint8))
    with pytest.raises(ValueError, match="wide.png is 20x10 .* give image_size"):
        load_dataset(f"folder:{tmp_path}", "test")
    resized = load_dataset(f"folder:{tmp_path}", "test", image_size=4)
    assert resized.images.shape == (2, 1, 4, 4)
    assert resized.images[1].unique().tolist() == [200]


def test_folder_corrupt_file_error_or_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        _save(tmp_path / "train" / "x" / f"{i}.jpg", np.full((8, 8, 3), 60 * i, np.uint8), "JPEG")
    good = (tmp_path / "train" / "x" / "0.jpg").read_bytes()
    (tmp_path / "train" / "x" / "1.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "train" / "x" / "2.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode .*1.jpg.*on_corrupt='skip'"):
        load_dataset(f"folder:{tmp_path}", "train")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.folder"):
        kept = load_dataset(f"folder:{tmp_path}", "train", on_corrupt="skip")
    assert len(kept) == 1
    assert "skipped 2 images" in caplog.text


def test_folder_tar_shards_and_missing_layout(tmp_path: Path) -> None:
    for split in ("train",):
        for i in range(2):
            with tarfile.open(tmp_path / f"{split}-00{i}.tar", "w") as tar:
                for label in ("dog", "bird"):
                    buffer = io.BytesIO()
                    Image.fromarray(np.full((4, 4, 3), 10 * i, np.uint8)).save(buffer, format="PNG")
                    info = tarfile.TarInfo(f"{split}/{label}/{i}.png")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)
    dataset = load_dataset(f"folder:{tmp_path}", "train")
    assert dataset.classes == ["bird", "dog"] and dataset.labels.tolist() == [1, 0, 1, 0]
    assert dataset.images[2:].unique().tolist() == [10]
    with pytest.raises(FileNotFoundError, match="test-\\*.tar"):
        load_dataset(f"folder:{tmp_path}", "test")
