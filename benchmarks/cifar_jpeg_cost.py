"""What the JPEG copy of CIFAR-10 costs a trained CIFAR network, on the originals we have.

The data folder's CIFAR-10 is a lossy copy (``cifar10-jpg``: IJG quality 75, 4:2:0
chroma subsampling); only the first 164 images of each original batch survive as
pixels (``cifar10-sample/cifar10_batch_prefixes.npz``). This script finds the JPEG
copy of each of the 164 original test images (the copy's file NNNN of class c is
the NNNN-th test image of class c), checks the pairing by PSNR (the data README: median 30.4 dB), and scores one
checkpoint on both versions of those 164 images, and on the whole JPEG test set
for reference: how differently the network sees the originals and their copies.

    .venv/bin/python benchmarks/cifar_jpeg_cost.py RUN_OR_CHECKPOINT --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

import numpy as np
import torch

from cnnlab.data import load_dataset
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.images import decode_image
from cnnlab.evaluate.protocols import evaluate
from cnnlab.checkpoint import load_checkpoint
from cnnlab.train.config import input_pipeline
from cnnlab.train.task import load_model

SAMPLE = "cifar10-sample/cifar10_batch_prefixes.npz"


def originals_and_copies(data_dir: Path) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
    """The 164 original test images, their JPEG copies (same order), and the whole JPEG test set."""
    sample = np.load(data_dir / SAMPLE)
    pixels = torch.from_numpy(sample["test_batch_data"]).view(-1, 3, 32, 32)
    labels = torch.from_numpy(sample["test_batch_labels"][: len(pixels)].astype(np.int64))
    jpeg = load_dataset("cifar10", "test", str(data_dir))
    # The copy of an original is test/<class>/NNNN.jpg, NNNN its position among its class's test images.
    wanted, seen = [], [0] * len(jpeg.classes)
    for label in labels.tolist():
        wanted.append(f"test/{jpeg.classes[label]}/{seen[label]:04d}.jpg")
        seen[label] += 1
    found = {}
    for shard in sorted((data_dir / "cifar10-jpg").glob("test-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name in wanted:
                    found[member.name] = decode_image(tar.extractfile(member).read(), f"{shard}:{member.name}")
    copies = torch.stack([torch.from_numpy(found[name].copy()).permute(2, 0, 1) for name in wanted])
    original = ImageDataset(pixels.contiguous(), labels, jpeg.classes, "originals (164 test images)")
    copied = ImageDataset(copies.contiguous(), labels.clone(), jpeg.classes, "their JPEG copies")
    return original, copied, jpeg


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run directory or a checkpoint (its best is used for a run)")
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    path = Path(args.checkpoint)
    checkpoint = load_checkpoint(path / "checkpoints" / "best.json" if path.is_dir() else path)
    model = load_model(checkpoint)
    transform = input_pipeline(checkpoint.meta["config"], train=False,
                               normalize=checkpoint.meta.get("task", {}).get("normalize"))
    original, copies, jpeg = originals_and_copies(Path(args.data_dir))
    quality = psnr(original.images, copies.images)
    print(f"# {checkpoint.path} (step {checkpoint.step}); fp32, eval mode")
    print(f"# pairing check: PSNR original vs JPEG copy, median {quality.median():.1f} dB "
          f"(min {quality.min():.1f}, max {quality.max():.1f}) over {len(original)} images\n")
    print("| images | protocol | n | top-1 accuracy |")
    print("|---|---|---|---|")
    for dataset in (jpeg, copies, original):
        for protocol in ("center", "flip"):
            result = evaluate(model, dataset, protocol, transform=transform)
            print(f"| {dataset.name} | {protocol} | {result['n']} | {100 * result['top1']:.2f}% |", flush=True)
    with torch.inference_mode():
        predict = [model(transform(d.images.float() / 255, None)).argmax(1) for d in (original, copies)]
    right = [p == original.labels for p in predict]
    print(f"\nthe 164 pairs: right on both {int((right[0] & right[1]).sum())}, only the original "
          f"{int((right[0] & ~right[1]).sum())}, only the copy {int((~right[0] & right[1]).sum())}, "
          f"neither {int((~right[0] & ~right[1]).sum())}; same prediction for {int((predict[0] == predict[1]).sum())}")


if __name__ == "__main__":
    main()
