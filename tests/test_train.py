"""The trainer's parts: schedules, optimisers, losses, recipes, data order, and the
non-finite-loss stop."""

from __future__ import annotations

import ctypes
import math
import platform
from pathlib import Path

import pytest
import torch
import yaml
import torch.nn.functional as F

from cnnlab.classify import classification_loss
from cnnlab.train import LrSchedule, NonFiniteLossError, TrainConfig, Trainer, build_optimizer
from cnnlab.checkpoint import load_checkpoint
import cnnlab.commands.cli as cli
import cnnlab.train.config
from cnnlab.hardware import keep_freed_memory
from cnnlab.train.config import (apply_override, input_pipeline, load_recipe, resolve_config, resolve_precision,
                                 shipped_recipes)
from cnnlab.train.distributed import DistContext
from cnnlab.classify.task import epoch_batches



def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3))]


def test_resnet_cifar_schedule_counts_iterations() -> None:
    config = resolve_config("resnet20", "resnet_cifar")
    assert config.optimizer == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
    assert (config.batch_size, config.max_steps) == (128, 64000)
    optimizer = build_optimizer(_params(), config.optimizer)
    schedule = LrSchedule(config.schedule, steps_per_epoch=390, total_steps=64000)
    rates = {step: schedule.apply(optimizer, step) for step in (0, 31999, 32000, 47999, 48000, 63999)}
    assert rates[0] == rates[31999] == 0.1
    assert rates[32000] == rates[47999] == pytest.approx(0.01)
    assert rates[48000] == rates[63999] == pytest.approx(0.001)


def test_epoch_schedules_change_at_epoch_boundaries_after_warmup() -> None:
    step = LrSchedule({"name": "step", "step_size": 2, "gamma": 0.94}, steps_per_epoch=10, total_steps=100)
    assert [step.factor(s) for s in (0, 19, 20, 39, 40)] == pytest.approx([1, 1, 0.94, 0.94, 0.94**2])
    warm = LrSchedule({"name": "constant", "warmup": 1, "warmup_start": 0.1}, steps_per_epoch=10, total_steps=100)
    assert [warm.factor(s) for s in (0, 5, 10, 50)] == pytest.approx([0.1, 0.55, 1, 1])
    cosine = LrSchedule({"name": "cosine", "min_factor": 0.1}, steps_per_epoch=10, total_steps=100)
    assert [cosine.factor(s) for s in (0, 50, 100)] == pytest.approx([1, 0.55, 0.1])


def test_plateau_divides_by_ten_at_most_three_times_and_round_trips() -> None:
    schedule = LrSchedule({"name": "plateau", "patience": 1, "max_reductions": 3}, steps_per_epoch=1, total_steps=9)
    cuts = [schedule.observe(err) for err in [50, 40, 40, 40, 40, 40, 40, 40, 40, 40]]
    assert cuts == [False, False, False, True, False, True, False, True, False, False]
    assert schedule.factor(0) == pytest.approx(1e-3)
    copy = LrSchedule({"name": "plateau"}, steps_per_epoch=1, total_steps=9)
    copy.load_state_dict(schedule.state_dict())
    assert copy.state_dict() == schedule.state_dict()


def test_schedule_and_optimizer_errors_say_what_to_use() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'exp'.*constant"):
        LrSchedule({"name": "exp"}, steps_per_epoch=1, total_steps=1)
    with pytest.raises(ValueError, match="milestones"):
        LrSchedule({"name": "multistep"}, steps_per_epoch=1, total_steps=1)
    with pytest.raises(ValueError, match="unknown key.*milestone\\b"):
        LrSchedule({"name": "multistep", "milestone": [3]}, steps_per_epoch=1, total_steps=1)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        build_optimizer(_params(), {"name": "lbfgs"})
    with pytest.raises(ValueError, match="optimizer 'sgd'.*betas"):
        build_optimizer(_params(), {"name": "sgd", "betas": [0.9, 0.99]})


def test_optimizers_take_the_papers_settings() -> None:
    rms = build_optimizer(_params(), {"name": "rmsprop"})
    assert isinstance(rms, torch.optim.RMSprop)
    assert (rms.defaults["alpha"], rms.defaults["eps"], rms.defaults["lr"]) == (0.9, 1.0, 0.045)
    sgd = build_optimizer(_params(), {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4})
    assert sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 1e-4
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("adadelta", torch.optim.Adadelta)):
        assert isinstance(build_optimizer(_params(), {"name": name}), cls)


def test_aux_losses_are_weighted_and_smoothing_applies_to_every_head() -> None:
    torch.manual_seed(0)
    main, aux1, aux2 = torch.randn(3, 4, 10).unbind(0)
    target = torch.tensor([1, 2, 3, 4])
    loss, logits = classification_loss((main, aux1, aux2), target, aux_weights=(0.3, 0.3), label_smoothing=0.1)
    expected = sum(w * F.cross_entropy(x, target, label_smoothing=0.1) for w, x in ((1, main), (0.3, aux1), (0.3, aux2)))
    assert torch.allclose(loss, expected) and logits is main
    # Smoothed cross-entropy by hand: (1 - eps) * NLL + eps * mean over classes of -log p.
    log_p = main.log_softmax(1)
    by_hand = (0.9 * -log_p.gather(1, target[:, None]).squeeze(1) + 0.1 * -log_p.mean(1)).mean()
    assert torch.allclose(classification_loss(main, target, label_smoothing=0.1)[0], by_hand)
    with pytest.raises(ValueError, match="2 auxiliary output.*0 aux weight"):
        classification_loss((main, aux1, aux2), target)


def test_epoch_order_is_seeded_differs_per_epoch_and_shards_cover_the_global_batch() -> None:
    single = epoch_batches(100, 8, seed=3, epoch=0, context=DistContext())
    assert single.shape == (12, 8) and single.unique().numel() == 96
    assert torch.equal(single, epoch_batches(100, 8, seed=3, epoch=0, context=DistContext()))
    assert not torch.equal(single, epoch_batches(100, 8, seed=3, epoch=1, context=DistContext()))
    shards = [epoch_batches(100, 8, seed=3, epoch=0, context=DistContext(rank, 2, rank)) for rank in (0, 1)]
    assert torch.equal(torch.cat(shards, dim=1), single)


def test_every_recipe_resolves_and_builds(tmp_path: Path) -> None:
    assert len(shipped_recipes()) >= 10
    for recipe in shipped_recipes():
        config = resolve_config("resnet20", recipe)
        build_optimizer(_params(), config.optimizer)
        LrSchedule(config.schedule, steps_per_epoch=10, total_steps=100)
        input_pipeline(config.to_dict(), train=True)
    assert load_recipe("inception_v3")["label_smoothing"] == 0.1


def test_overrides_reach_into_the_recipe_and_unknown_keys_fail() -> None:
    config = resolve_config("resnet20", "resnet_cifar", ["optimizer.lr=0.05", "augment=[]", "max_steps=null"])
    assert config.optimizer["lr"] == 0.05 and config.augment == [] and config.max_steps is None
    assert config.optimizer["momentum"] == 0.9, "the recipe's other optimizer settings stay"
    with pytest.raises(ValueError, match="unknown config key.*epoch\\b"):
        resolve_config("resnet20", None, ["epoch=3"])
    with pytest.raises(ValueError, match="key=value"):
        apply_override({}, "lr")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(model="resnet20", precision="fp8")


def test_precision_auto_is_bf16_with_channels_last_where_native_and_a_resume_keeps_it(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    config = TrainConfig(model="resnet20")
    assert config.precision == "auto", "the fast path is the default"
    for native, expected in ((True, ("bf16", True)), (False, ("fp32", False))):
        monkeypatch.setattr(cnnlab.train.config, "native_bf16", lambda device, native=native: native)
        concrete = resolve_precision(config, "cpu")
        assert (concrete.precision, concrete.channels_last) == expected
    explicit = TrainConfig(model="resnet20", precision="bf16")
    assert resolve_precision(explicit, "cpu") == explicit, "an explicit precision is kept as it is"
    # A run records its choice; resumed where the choice would differ, it computes as it began.
    run = TrainConfig(model="resnet20", dataset="digits", max_steps=1, batch_size=16)
    monkeypatch.setattr(cnnlab.train.config, "native_bf16", lambda device: True)
    Trainer(run, tmp_path).fit()
    begun = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (begun["precision"], begun["channels_last"]) == ("bf16", True)
    monkeypatch.setattr(cnnlab.train.config, "native_bf16", lambda device: False)
    resumed = Trainer(TrainConfig(model="resnet20", dataset="digits", max_steps=2, batch_size=16), tmp_path,
                      resume=True)
    assert (resumed.config.precision, resumed.config.channels_last) == ("bf16", True)
    assert resumed.fit().step == 2


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2 (malloc.h, glibc 2.33+): hblkhd counts the bytes in mmapped blocks.
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def test_the_cnnlab_command_keeps_freed_memory_from_glibc_going_back_to_the_kernel(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert cli.main(["models", "resnet20"]) == 0 and calls == [1]
    monkeypatch.setenv("CNNLAB_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False, "the opt-out leaves the allocator alone"
    monkeypatch.delenv("CNNLAB_KEEP_FREED_MEMORY")
    libc = ctypes.CDLL(None)
    if platform.libc_ver()[0] != "glibc" or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc's malloc (2.33+) only")
    assert keep_freed_memory() is True
    libc.mallinfo2.restype = _MallInfo2
    before = libc.mallinfo2().hblkhd
    block = torch.empty(16 << 20, dtype=torch.uint8)  # an activation-sized block: 16 MiB
    assert libc.mallinfo2().hblkhd - before < block.numel(), "served from the heap, not mmapped"


def test_non_finite_loss_stops_at_that_step_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    # Adam moves every weight by about lr: with lr 1e37 the weights reach 1e37 after
    # step 1, so the activations overflow and the loss of step 2 is NaN.
    config = TrainConfig(model="resnet20", dataset="digits", max_steps=5, batch_size=16, checkpoint_every=1,
                         optimizer={"name": "adam", "lr": 1e37})
    trainer = Trainer(config, tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 2 \(epoch 1\).*last good checkpoint"):
        trainer.fit()
    kept = load_checkpoint(tmp_path / "checkpoints" / "last.json")
    assert kept.step == 1
    assert all(torch.isfinite(v).all() for v in kept.model_state().values() if v.is_floating_point())
    assert math.isfinite(float(kept.meta["optimizer"]["param_groups"][0]["lr"]))
