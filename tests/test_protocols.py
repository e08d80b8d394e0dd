"""Metrics and test protocols: crop geometry on coordinate images, averaging, evaluate()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import create_model
from cnnlab.data import ImageDataset, Normalize
from cnnlab.evaluate import (
    center_crop,
    crops_144,
    ensemble,
    evaluate,
    multiscale_dense,
    scaled_geometry,
    ten_crop,
    topk_accuracy,
    topk_error,
)
from cnnlab.evaluate import inference
from cnnlab.evaluate.inference import eval_precision, prepare_for_inference
from cnnlab.evaluate.protocols import center_views, crops_144_views, multiscale_views, resize_shorter, ten_crop_views


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """A (1, 2, h, w) batch: channel 0 holds each pixel's row, channel 1 its column."""
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    return torch.stack([rows, cols]).unsqueeze(0).clone()


def window(view: torch.Tensor) -> tuple[int, int, bool]:
    """(top, left, mirrored) of a whole-pixel view of a coordinate image."""
    top, first_col, last_col = view[0, 0, 0, 0], view[0, 1, 0, 0], view[0, 1, 0, -1]
    mirrored = bool(first_col > last_col)
    return int(top), int(min(first_col, last_col)), mirrored


class Recorder:
    """A model that remembers every view and returns fixed logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits, self.views = logits, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.views.append(x.clone())
        return self.logits.expand(len(x), -1)


# --- metrics ----------------------------------------------------------------------------------


def test_topk_accuracy_and_error() -> None:
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.3, 0.4, 0.9],  # label 6: top-1
            [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label 1: rank 7, outside top-5
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],  # label 2: rank 5, inside top-5
            [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 1: rank 2
        ]
    )
    labels = torch.tensor([6, 1, 2, 1])
    assert topk_accuracy(scores, labels) == {1: 0.25, 5: 0.75}
    assert topk_error(scores, labels, ks=(1, 2)) == {1: 0.75, 2: 0.5}
    # k beyond the number of classes counts every row.
    assert topk_accuracy(scores[:, :3], torch.tensor([0, 1, 2, 0]), ks=(5,)) == {5: 1.0}
    with pytest.raises(ValueError, match="scores \\(N, K\\)"):
        topk_accuracy(scores, labels[:2])


# --- geometry ---------------------------------------------------------------------------------


def test_center_views() -> None:
    image = coordinate_image(6, 10)
    (whole,) = center_views(image)
    assert whole.shape == (1, 2, 6, 6) and window(whole) == (0, 2, False)
    (small,) = center_views(image, crop_size=4)
    assert window(small) == (1, 3, False)
    (resized,) = center_views(coordinate_image(8, 16), resize=4, crop_size=2)
    assert resized.shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match="does not fit a 6x10 image.*scaled_geometry"):
        next(center_views(image, crop_size=7))


def test_ten_crop_corners_center_and_mirrors() -> None:
    views = list(ten_crop_views(coordinate_image(6, 10), crop_size=4, resize=None))
    assert len(views) == 10 and all(v.shape == (1, 2, 4, 4) for v in views)
    windows = [window(v) for v in views]
    corners = [(0, 0), (0, 6), (2, 0), (2, 6), (1, 3)]
    assert windows == [(top, left, mirrored) for top, left in corners for mirrored in (False, True)]
    for plain, mirror in zip(views[::2], views[1::2]):
        assert torch.equal(mirror, plain.flip(-1))


def test_ten_crops_of_the_padded_image_keep_the_training_scale_and_pad_with_the_fill() -> None:
    image = coordinate_image(6, 6) + 1  # no pixel is 0, so padding stands out
    views = list(ten_crop_views(image, crop_size=6, resize=None, padding=2, fill=[-1.0, -2.0]))
    assert len(views) == 10 and all(v.shape == (1, 2, 6, 6) for v in views)
    top_left, centre = views[0], views[8]
    assert torch.equal(centre, image)  # the centre crop of the padded image is the image itself
    assert (top_left[0, 0, :2] == -1).all() and (top_left[0, 1, :, :2] == -2).all()  # each channel's fill
    assert torch.equal(top_left[..., 2:, 2:], image[..., :4, :4])  # pixels copied, not resampled


def test_resize_shorter_keeps_aspect_and_linear_ramps() -> None:
    image = coordinate_image(20, 30)
    small = resize_shorter(image, 10)
    assert small.shape[-2:] == (10, 15)
    # Antialiased 2x shrink of a ramp: interior pixels sit at the mean of their 2x2 block.
    assert torch.allclose(small[0, 1, 5, 2:-2], torch.arange(2, 13, dtype=torch.float64) * 2 + 0.5)
    assert resize_shorter(coordinate_image(30, 20), 10).shape[-2:] == (15, 10)
    assert resize_shorter(image, 20) is image


def test_144_crops_count_windows_and_mirrors() -> None:
    image = coordinate_image(8, 20)  # landscape: squares at columns 0, 6, 12
    scales = (8, 10, 12, 14)
    views = list(crops_144_views(image, scales=scales, crop_size=6))
    assert len(views) == 144 == 4 * 3 * 6 * 2
    assert all(v.shape == (1, 2, 6, 6) for v in views)
    # Every view comes with its mirror, and all 144 are different.
    for plain, mirror in zip(views[::2], views[1::2]):
        assert torch.equal(mirror, plain.flip(-1))
    assert len({v.numpy().tobytes() for v in views}) == 144
    # At scale 8 (no rescaling) the crops are exact windows of the image.
    first_scale = views[:36]
    crops = [window(v) for i, v in enumerate(first_scale) if i % 12 < 10]
    expected = [
        (top, square + left, mirrored)
        for square in (0, 6, 12)
        for top, left in [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]
        for mirrored in (False, True)
    ]
    assert crops == expected
    # The sixth crop of each square is the whole 8x8 square shrunk to 6x6: same centre.
    for square, view in zip((0, 6, 12), first_scale[10::12]):
        assert view[0, 1].mean() == pytest.approx(square + 3.5)
        assert view[0, 0].mean() == pytest.approx(3.5)


def test_144_crops_portrait_uses_top_center_bottom() -> None:
    views = list(crops_144_views(coordinate_image(20, 8), scales=(8,), crop_size=6))
    assert len(views) == 36
    tops = [window(v)[0] for v in views[::12]]  # the first crop (top-left) of each square
    assert tops == [0, 6, 12]


def test_multiscale_views_sizes_and_flips() -> None:
    views = list(multiscale_views(coordinate_image(8, 20), scales=(8, 12)))
    assert [tuple(v.shape[-2:]) for v in views] == [(8, 20), (8, 20), (12, 30), (12, 30)]
    assert torch.equal(views[1], views[0].flip(-1))
    assert len(list(multiscale_views(coordinate_image(8, 20), scales=(8, 12), flip=False))) == 2


# --- combining --------------------------------------------------------------------------------


def test_protocols_average_softmax_over_views() -> None:
    image = coordinate_image(6, 10)

    def left_looking(x: torch.Tensor) -> torch.Tensor:
        # Class 0 logit = mean column: differs between views, so averaging is visible.
        mean_col = x[:, 1].mean(dim=(1, 2))
        return torch.stack([mean_col, torch.zeros_like(mean_col)], dim=1)

    probs = ten_crop(left_looking, image, crop_size=4, resize=None)
    expected = torch.stack(
        [left_looking(v).softmax(dim=1) for v in ten_crop_views(image, crop_size=4, resize=None)]
    ).mean(dim=0)
    assert torch.allclose(probs.double(), expected, atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1))
    recorder = Recorder(torch.tensor([[0.0, 1.0]]))
    crops_144(recorder, image, scales=(6, 7, 8, 9), crop_size=4)
    assert len(recorder.views) == 144
    recorder = Recorder(torch.tensor([[0.0, 1.0]]))
    center_crop(recorder, image)
    assert len(recorder.views) == 1


def test_multiscale_dense_averages_score_maps_then_softmax() -> None:
    torch.manual_seed(0)
    fully_convolutional = nn.Conv2d(2, 3, kernel_size=3)  # a score map (N, 3, h, w)
    image = torch.rand(2, 2, 8, 12)
    with torch.no_grad():
        probs = multiscale_dense(fully_convolutional, image, scales=(8, 10))
        expected = torch.stack(
            [fully_convolutional(v).mean(dim=(2, 3)).softmax(dim=1) for v in multiscale_views(image, scales=(8, 10))]
        ).mean(dim=0)
    assert probs.shape == (2, 3)
    assert torch.allclose(probs, expected, atol=1e-6)


def test_ensemble_averages_probabilities() -> None:
    a, b = Recorder(torch.tensor([[2.0, 0.0]])), Recorder(torch.tensor([[0.0, 1.0]]))
    image = torch.rand(3, 1, 4, 4)
    probs = ensemble([a, b], image)
    expected = (torch.tensor([2.0, 0.0]).softmax(0) + torch.tensor([0.0, 1.0]).softmax(0)) / 2
    assert torch.allclose(probs, expected.expand(3, 2))
    with pytest.raises(ValueError, match="at least one"):
        ensemble([], image)


def test_scaled_geometry() -> None:
    assert scaled_geometry("10crop", 224) == {"crop_size": 224, "resize": 256}
    assert scaled_geometry("10crop", 32) == {"crop_size": 32, "resize": 37}
    assert scaled_geometry("144crop", 224)["scales"] == (256, 288, 320, 352)
    assert scaled_geometry("multiscale", 32)["scales"] == (32, 37, 55, 69, 91)
    assert scaled_geometry("center", 32) == {}
    with pytest.raises(ValueError, match="center, 10crop, 144crop, multiscale"):
        scaled_geometry("5crop", 32)


# --- evaluate ---------------------------------------------------------------------------------


class Brightness(nn.Module):
    """Predicts class k for images of brightness k/10, with nearby classes next."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = x.mean(dim=(1, 2, 3)) * 10
        return -(level[:, None] - torch.arange(10.0)).abs()


def test_evaluate_counts_top1_top5_and_restores_mode() -> None:
    levels = torch.arange(10)
    images = (levels.double() * 25.5).round().to(torch.uint8)[:, None, None, None].expand(10, 1, 8, 8).clone()
    labels = levels.clone()
    labels[[0, 1]] = torch.tensor([2, 1]) + 1  # 0->3 and 1->2: wrong, but within top-5 (rank 4, 2)
    labels[9] = 0  # rank 10: wrong in top-5 too
    dataset = ImageDataset(images, labels, [str(i) for i in range(10)], "brightness")
    model = Brightness().train()
    result = evaluate(model, dataset, batch_size=4)
    assert result == pytest.approx({"top1": 0.7, "top5": 0.9, "top1_err": 0.3, "top5_err": 0.1, "n": 10})
    assert model.training  # put in eval mode for the run, restored after
    # An ensemble of two identical models and a 10-crop protocol give the same answer here.
    again = evaluate([Brightness(), Brightness()], dataset, "10crop", crop_size=6, resize=None)
    assert again["top1"] == pytest.approx(0.7)
    # The transform runs before the model: shifting brightness by 0.1 shifts every prediction.
    shifted = evaluate(Brightness(), dataset, transform=Normalize([-0.1], [1.0]))
    assert shifted["top1"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(model, dataset, "dense")


def test_flip_averages_the_image_and_its_mirror() -> None:
    from cnnlab.evaluate.protocols import PROTOCOLS, center_and_mirror

    image = coordinate_image(6, 6)  # square: the centre view is the whole image

    def left_looking(x: torch.Tensor) -> torch.Tensor:
        first_col = x[:, 1, :, 0]  # the leftmost column changes under the mirror
        return torch.stack([first_col.mean(1), torch.zeros_like(first_col[:, 0])], dim=1)

    probs = center_and_mirror(left_looking, image)
    expected = (left_looking(image).softmax(1) + left_looking(image.flip(-1)).softmax(1)) / 2
    assert torch.allclose(probs.double(), expected, atol=1e-6) and PROTOCOLS["flip"] is center_and_mirror


# --- evaluation in the training precision -----------------------------------------------------


@pytest.mark.parametrize(("native", "asked", "trained", "expected"), [
    (True, "auto", "bf16", "bf16"),
    (True, "auto", "fp16", "bf16"),
    (True, "auto", "fp32", "fp32"),  # a run trained in fp32 is evaluated in fp32 unless asked
    (True, "auto", None, "bf16"),  # no record of training: the device decides
    (False, "auto", "bf16", "fp32"),  # bf16 would be emulated, and slower than fp32
    (False, "bf16", "fp32", "bf16"),
    (True, "fp32", "bf16", "fp32"),
])
def test_eval_precision_follows_the_run_and_the_device(monkeypatch: pytest.MonkeyPatch, native: bool, asked: str,
                                                       trained: str | None, expected: str) -> None:
    monkeypatch.setattr(inference, "native_bf16", lambda device: native)
    assert eval_precision("cpu", asked, trained) == expected


def test_unknown_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        eval_precision("cpu", "fp8")
    with pytest.raises(ValueError, match="eval_precision resolves auto"):
        prepare_for_inference(nn.Linear(2, 2), "cpu", "auto")


@pytest.fixture(scope="module")
def confident_resnet() -> nn.Module:
    """A random ResNet-20 with batch-norm statistics of its own activations and a class layer
    of unit-variance weights, so that its logits spread over several units, as a trained net's."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 3, 32, 32))
        nn.init.normal_(model.get_classifier().weight, std=1.0)
    return model.eval()


def test_bf16_evaluation_agrees_with_fp32(confident_resnet: nn.Module) -> None:
    # bf16 keeps 8 significant bits: across ResNet-20's 19 convolutions the logits move by
    # a few percent of their spread. Stated tolerance: logits within 5% of their standard
    # deviation, dense multi-scale probabilities within 0.02, and at least 90% of the
    # predictions the same.
    torch.manual_seed(1)
    images = torch.randn(48, 3, 32, 32)
    fp32 = prepare_for_inference(confident_resnet, "cpu", "fp32")
    bf16 = prepare_for_inference(confident_resnet, "cpu", "bf16")
    with torch.inference_mode():
        exact, low = fp32(images), bf16(images)
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), exact, rtol=0, atol=0.05 * exact.std().item())
        assert (low.argmax(1) == exact.argmax(1)).float().mean() >= 0.9
        geometry = {"scales": (24, 32, 40)}
        probs, low_probs = multiscale_dense(fp32, images, **geometry), multiscale_dense(bf16, images, **geometry)
    torch.testing.assert_close(low_probs, probs, rtol=0, atol=0.02)
    assert (low_probs.argmax(1) == probs.argmax(1)).float().mean() >= 0.9


def test_fp32_turns_off_an_autocast_the_caller_opened(confident_resnet: nn.Module) -> None:
    images = torch.randn(4, 3, 32, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert prepare_for_inference(confident_resnet, "cpu", "fp32")(images).dtype == torch.float32


def test_compiled_evaluation_matches_eager() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))
    images = torch.randn(6, 3, 12, 12)
    with torch.inference_mode():
        eager = prepare_for_inference(model, "cpu", "bf16")(images)
        compiled = prepare_for_inference(model, "cpu", "bf16", compile=True)(images)
    # The same bf16 arithmetic, fused differently: within two bf16 rounding steps.
    torch.testing.assert_close(compiled.float(), eager.float(), rtol=2**-7, atol=2**-7)
