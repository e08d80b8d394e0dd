"""The U-Net as published: sizes, channels, valid-size rules, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import create_model, model_card, profile
from cnnlab.models.unet import UNet, check_input_size, output_size, valid_input_size


def test_paper_sizes():
    assert valid_input_size(388) == 572  # Fig. 1
    assert output_size(572) == 388
    assert output_size(188) == 4 == output_size(model_card("unet").min_input_size)


@pytest.mark.parametrize("output", [4, 20, 36, 388, 404])
def test_valid_input_size_round_trips(output):
    assert output_size(valid_input_size(output)) == output


def test_invalid_sizes_name_the_nearest_valid_ones():
    with pytest.raises(ValueError, match="388, 404"):
        valid_input_size(390)
    with pytest.raises(ValueError, match="572 or 588"):
        check_input_size(573)
    with pytest.raises(ValueError, match="188"):
        check_input_size(100)
    with pytest.raises(ValueError, match="multiple of 16"):
        check_input_size(100, padding="same")


def test_forward_refuses_an_invalid_size():
    model = UNet(width=2)
    with pytest.raises(ValueError, match="nearest valid: 188 or 204"):
        model(torch.rand(1, 1, 190, 190))
    with pytest.raises(ValueError, match="at least 188x188"):
        model(torch.rand(1, 1, 187, 187))
    with pytest.raises(ValueError, match="1 input channels"):
        model(torch.rand(1, 3, 188, 188))


def test_paper_network_on_meta():
    prof = profile("unet")
    assert prof.input_size == (1, 572, 572)
    out = {s.name: s.output_size for s in prof.stages}
    assert out["down1"] == (64, 568, 568) and out["bottom"] == (1024, 28, 28)  # Fig. 1
    assert out["up1"] == (512, 52, 52) and out["head"] == (2, 388, 388)
    assert round(prof.params / 1e6, 1) == 31.0  # the count usually quoted for 2 classes


def test_layers_are_the_papers():
    with torch.device("meta"):
        model = create_model("unet")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.padding == (0, 0) for c in convs)  # unpadded
    assert all(c.kernel_size == (3, 3) for c in convs[:-1]) and convs[-1].kernel_size == (1, 1)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (c, c // 2, (2, 2), (2, 2)) for c in (1024, 512, 256, 128)
    ]
    assert [model.down1.convs[0].out_channels, model.bottom.convs[0].out_channels] == [64, 1024]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4


def test_skip_is_cropped_and_concatenated():
    model = UNet(width=2).eval()
    x = torch.rand(1, 1, 188, 188)
    seen = {}
    model.up4.convs.register_forward_hook(lambda m, inp, out: seen.update(shape=inp[0].shape))
    model(x)
    assert seen["shape"] == (1, 4, 8, 8)  # 2 cropped skip channels + 2 up-conv channels


def test_modified_unet_same_padding_seven_classes():
    model = create_model("unet", padding="same", num_classes=7, width=2)
    y = model(torch.rand(2, 1, 64, 48))
    assert y.shape == (2, 7, 64, 48)
    model.reset_classifier(3)
    assert model(torch.rand(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_rectangular_and_multichannel_input():
    model = create_model("unet", in_chans=3, width=2)
    assert model(model.example_input((188, 204))).shape == (1, 2, 4, 20)
