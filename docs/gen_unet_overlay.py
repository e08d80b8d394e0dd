"""Regenerates docs/images/unet-overlay.png, the segmentation page's picture.

A small U-Net (width 8, 196 px tiles, lr 0.01: ten times the default, to learn in minutes) is trained briefly on the shared ISBI 2012
slices, then ``cnnlab predict`` draws one training slice's overlay: predicted membranes
in red, the label's in green. Its top-left corner is kept, to keep the repository small.

Usage: ``CNNLAB_DATA=../shared/data .venv/bin/python docs/gen_unet_overlay.py [--epochs N]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "images" / "unet-overlay.png"


def main() -> None:
    """Trains, predicts and writes the scaled-down overlay."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs (30 tiles each) of the small U-Net")
    args = parser.parse_args()
    data = Path(os.environ["CNNLAB_DATA"]) / "isbi2012" / "train"
    cnnlab = str(Path(sys.executable).parent / "cnnlab")
    with tempfile.TemporaryDirectory() as tmp:
        run, pred = Path(tmp) / "unet", Path(tmp) / "pred"
        subprocess.run([cnnlab, "train", "unet", "--dataset", "isbi2012", "--width", "8", "--tile", "196",
                        "--epochs", str(args.epochs), "--out", str(run)], check=True)
        subprocess.run([cnnlab, "predict", str(run), str(data / "image" / "0.png"), "--out", str(pred),
                        "--labels", str(data / "label" / "0.png")], check=True)
        picture = Image.open(pred / "0_overlay.png")
        OUT.parent.mkdir(exist_ok=True)
        picture.crop((0, 0, 320, 320)).save(OUT, optimize=True)  # a corner at full resolution: the legend stays legible
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
