"""Dataset names and the one function that loads any of them."""

from __future__ import annotations

from pathlib import Path

from cnnlab.data.dataset import ImageDataset, data_root
from cnnlab.errors import CnnlabError

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder:PATH")
SPLITS = ("train", "test")
ON_CORRUPT = ("error", "skip")


def load_dataset(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    on_corrupt: str = "error",
    image_size: int | None = None,
) -> ImageDataset:
    """Loads one split of a dataset into uint8 tensors.

    Args:
        name: one of :data:`DATASET_NAMES`; ``folder:PATH`` reads your own images
            from ``PATH/<split>/<class>/<image>`` or tar shards ``PATH/<split>-*.tar``.
        split: "train" or "test".
        data_dir: where the datasets live (see :func:`data_root`).
        on_corrupt: for image files that do not decode: "error" raises naming
            the file; "skip" leaves them out and logs how many.
        image_size: ``folder:`` datasets only: rescale and centre-crop every
            image to this square side; by default all images must share a size.

    Raises:
        CnnlabError: unknown name, split or policy, ``folder:`` without a path,
            or a file that is not what it should be (the message names it).
        FileNotFoundError: the files are missing; the message names them and
            says how to get them.
    """
    if not isinstance(name, str):
        raise CnnlabError(f"the dataset must be a name such as 'cifar10' or 'folder:PATH', got {name!r}")
    if split not in SPLITS:
        raise CnnlabError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if on_corrupt not in ON_CORRUPT:
        raise CnnlabError(f"unknown on_corrupt policy {on_corrupt!r}: use one of {', '.join(ON_CORRUPT)}")
    root = data_root(data_dir)
    if name == "digits":
        from cnnlab.data.digits import load_digits

        return load_digits(split)
    if name in ("mnist", "fashion-mnist"):
        from cnnlab.data.idx import load_mnist

        return load_mnist(name, root, split)
    if name in ("cifar10", "cifar100"):
        from cnnlab.data.cifar import load_cifar

        return load_cifar(name, root, split, on_corrupt=on_corrupt)
    if name.startswith("folder:"):
        folder = name[len("folder:") :].strip()
        if not folder:
            raise CnnlabError("'folder:' needs the path of your image folder after the colon, e.g. folder:~/my-images")
        from cnnlab.data.folder import load_folder

        return load_folder(Path(folder).expanduser(), split, image_size=image_size, on_corrupt=on_corrupt)
    raise CnnlabError(f"unknown dataset {name!r}: use one of {', '.join(DATASET_NAMES)}")
