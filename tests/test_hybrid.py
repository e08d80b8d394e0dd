"""AlexNet's hybrid parallelism: 2 gloo ranks on 127.0.0.1, data-parallel convolutions and
model-parallel dense layers, reach the weights of one process on the same global batch;
each rank holds half the dense weights; checkpoints resume across the two modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.train import TrainConfig, Trainer, load_checkpoint
from conftest import torchrun

# No dropout (its masks are drawn per rank) and no augmentation (seeded per rank).
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from torch import nn
    from cnnlab.layers.heads import FullyConnectedHead
    from cnnlab.models.base import ImageClassifier
    from cnnlab.cards import ModelCard, Paper
    from cnnlab.registry import register_model
    from cnnlab.train import TrainConfig, Trainer
    from cnnlab.train.distributed import shutdown

    class TinyFcNet(ImageClassifier):
        def __init__(self, *, in_chans, num_classes):
            super().__init__(in_chans=in_chans, num_classes=num_classes)
            self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU())
            self.add_stage("features", self.features)
            self.head = FullyConnectedHead(16, 2, num_classes, hidden=32, dropout=0.0)

    card = ModelCard(paper=Paper("test", 2026, "tiny"), task="cifar", input_size=8, min_input_size=8, num_classes=10)

    @register_model(card)
    def tiny_fc_net(**kwargs):
        return TinyFcNet(**kwargs)

    out, model, parallel, batches, steps, resume = sys.argv[1:7]
    big = model != "tiny_fc_net"
    config = TrainConfig(model=model, dataset="digits", max_steps=int(steps), batch_size=16, parallel=parallel,
                         dense_batches=batches, optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9},
                         model_kwargs={"dropout": 0.0} if big else {}, eval_batch_size=400,
                         preprocess=[{"name": "resize", "size": 67}] if big else [],
                         normalize={"mean": [0.3], "std": [0.4]}, device="cpu", precision="fp32")
    try:
        trainer = Trainer(config, out, resume=resume == "resume")
        dense = sum(p.numel() for n, p in trainer.model.named_parameters() if n.startswith("head.fc"))
        with open(os.path.join(out, f"rank{trainer.context.rank}.json"), "w") as f:
            json.dump({"dense_params": dense}, f)
        trainer.fit()
    finally:
        shutdown()
    """
)


def _run(script: Path, out: Path, model: str, parallel: str, steps: int, *, ranks: int = 1,
         batches: str = "slices", resume: bool = False) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = torchrun(ranks) if ranks > 1 else [sys.executable]
    done = subprocess.run([*launcher, str(script), str(out), model, parallel, batches, str(steps),
                           "resume" if resume else "new"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_same_weights(a: Path, b: Path) -> None:
    one, other = load_checkpoint(a / "checkpoints" / "last.json"), load_checkpoint(b / "checkpoints" / "last.json")
    assert one.step == other.step
    assert one.model_state().keys() == other.model_state().keys()
    for key, value in one.model_state().items():
        assert torch.allclose(value, other.model_state()[key], rtol=1e-4, atol=1e-6), key


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hybrid") / "train_hybrid.py"
    path.write_text(SCRIPT)
    return path


def test_two_hybrid_ranks_match_one_process_and_hold_half_the_dense_weights(script: Path, tmp_path: Path) -> None:
    _run(script, tmp_path / "single", "tiny_fc_net", "ddp", 6)
    _run(script, tmp_path / "slices", "tiny_fc_net", "hybrid", 6, ranks=2, batches="slices")
    _run(script, tmp_path / "whole", "tiny_fc_net", "hybrid", 6, ranks=2, batches="whole")
    _assert_same_weights(tmp_path / "single", tmp_path / "slices")
    _assert_same_weights(tmp_path / "single", tmp_path / "whole")
    full = json.loads((tmp_path / "single" / "rank0.json").read_text())["dense_params"]
    for rank in (0, 1):
        assert json.loads((tmp_path / "slices" / f"rank{rank}.json").read_text())["dense_params"] * 2 == full
    hybrid = load_checkpoint(tmp_path / "slices" / "checkpoints" / "last.json")
    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.json")
    assert hybrid.meta["metrics"]["test_top1_err"] == single.meta["metrics"]["test_top1_err"]
    assert {k: v.shape for k, v in hybrid.tensors.items()} == {k: v.shape for k, v in single.tensors.items()}


def test_checkpoints_resume_across_hybrid_and_single_process(script: Path, tmp_path: Path) -> None:
    _run(script, tmp_path / "single", "tiny_fc_net", "ddp", 6)
    _run(script, tmp_path / "from_hybrid", "tiny_fc_net", "hybrid", 3, ranks=2)
    _run(script, tmp_path / "from_hybrid", "tiny_fc_net", "ddp", 6, resume=True)
    _assert_same_weights(tmp_path / "single", tmp_path / "from_hybrid")
    _run(script, tmp_path / "from_single", "tiny_fc_net", "ddp", 3)
    _run(script, tmp_path / "from_single", "tiny_fc_net", "hybrid", 6, ranks=2, resume=True)
    _assert_same_weights(tmp_path / "single", tmp_path / "from_single")


def test_alexnet_owt_trains_the_hybrid_way(script: Path, tmp_path: Path) -> None:
    _run(script, tmp_path / "single", "alexnet_owt", "ddp", 2)
    _run(script, tmp_path / "hybrid", "alexnet_owt", "hybrid", 2, ranks=2, batches="whole")
    _assert_same_weights(tmp_path / "single", tmp_path / "hybrid")


def test_hybrid_needs_dense_layers_and_refuses_grad_clipping(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="needs a model whose classifier is fc6, fc7 and fc8"):
        Trainer(TrainConfig(model="resnet20", dataset="digits", max_steps=1, parallel="hybrid"), tmp_path / "r")
    with pytest.raises(CnnlabError, match="does not clip gradients"):
        TrainConfig(model="alexnet_owt", parallel="hybrid", grad_clip=2.0)
