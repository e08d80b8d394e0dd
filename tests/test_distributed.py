"""Two gloo processes on 127.0.0.1 under torchrun reach the weights of one process
with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from cnnlab.train import load_checkpoint
from conftest import torchrun

# A model without batch norm: BN statistics are per rank under DDP (as in the
# papers' multi-GPU training), so only a BN-free model has exactly the weights of
# a single process. No augmentation either: its draws are seeded per rank.
SCRIPT = textwrap.dedent(
    """
    import sys
    from torch import nn
    from cnnlab.layers import ClassifierHead
    from cnnlab.models.base import ImageClassifier
    from cnnlab.cards import ModelCard, Paper
    from cnnlab.registry import register_model
    from cnnlab.train import TrainConfig, Trainer
    from cnnlab.train.distributed import shutdown

    class TinyNet(ImageClassifier):
        def __init__(self, *, in_chans, num_classes):
            super().__init__(in_chans=in_chans, num_classes=num_classes)
            self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU())
            self.head = ClassifierHead(16, num_classes)

        def forward_features(self, x):
            return self.features(x)

    card = ModelCard(paper=Paper("test", 2026, "tiny"), task="cifar", input_size=8, min_input_size=8, num_classes=10)

    @register_model(card)
    def tiny_ddp_net(**kwargs):
        return TinyNet(**kwargs)

    config = TrainConfig(model="tiny_ddp_net", dataset="digits", max_steps=6, batch_size=32,
                         optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
                         normalize={"mean": [0.3], "std": [0.4]}, device="cpu", precision="fp32")
    try:
        Trainer(config, sys.argv[1]).fit()
    finally:
        shutdown()
    """
)


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "single")], check=True, env=env,
                   stderr=subprocess.DEVNULL, timeout=300)
    done = subprocess.run([*torchrun(2), str(script), str(tmp_path / "ddp")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.json")
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.json")
    assert single.step == ddp.step == 6
    assert (single.meta["world_size"], ddp.meta["world_size"]) == (1, 2)
    for key, value in single.model_state().items():
        assert torch.allclose(value, ddp.model_state()[key], rtol=1e-4, atol=1e-6), key
    # The test split is evaluated in shards and summed over the ranks.
    assert single.meta["metrics"]["test_top1_err"] == ddp.meta["metrics"]["test_top1_err"]
    # Only rank 0 logs: one event file, one metrics row.
    assert len(list((tmp_path / "ddp" / "tensorboard").iterdir())) == 1
    assert len((tmp_path / "ddp" / "metrics.csv").read_text().splitlines()) == 2


def test_googlenet_auxiliary_heads_train_under_two_ranks(tmp_path: Path) -> None:
    # DDP's wrapper hides the model's aux_weights; the loss must still weigh GoogLeNet's
    # two auxiliary classifiers (0.3 each). 80 px: the smallest input its aux heads take.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*torchrun(2), "-m", "cnnlab", "train", "googlenet", "--dataset", "digits",
                           "--set", "preprocess=[{name: resize, size: 80}]", "--max-steps", "1", "--batch-size", "4",
                           "--set", "eval_batch_size=64", "--precision", "fp32", "--out", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.json")
    assert (last.step, last.meta["world_size"]) == (1, 2)
    assert any(key.startswith("aux.") for key in last.model_state()), "the run kept its auxiliary heads"
