import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from symbench.bench.data import load_cifar10
from symbench.models import create_model, get_card, list_models
from symbench.models.layers import P4Block, P4Lift, group_max_pool
from symbench.models.layers.cn import CNBlock, CNLift
from symbench.models.registry import checkpoint_path
from conftest import SHARED_DATA, needs_shared_data


def _rot(x, k):
    return torch.rot90(x, k, (-2, -1))


def _bn_stats(model):
    """Give BN layers non-trivial running statistics so the check is not vacuous."""
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_p4_layers_rotate_space_and_cycle_orientations(k):
    torch.manual_seed(0)
    lift, block = P4Lift(3, 4, pool=True).eval(), P4Block(4, 2, pool=False).eval()
    x = torch.rand(2, 3, 16, 16)
    f = lambda t: block(lift(t))  # (2, 8, 8, 8): 2 fields x 4 orientations
    out, out_rot = f(x), f(_rot(x, k))
    n, c, h, w = out.shape
    expected = _rot(out, k).view(n, c // 4, 4, h, w).roll(k, dims=2).view(n, c, h, w)
    torch.testing.assert_close(out_rot, expected, atol=1e-5, rtol=0)
    # and the check can fail: without the orientation cycle the maps differ
    assert not torch.allclose(out_rot, _rot(out, k), atol=1e-3)


def test_baseline_cnn_is_not_rotation_invariant():
    torch.manual_seed(0)
    model = _bn_stats(create_model("baseline_cnn4"))
    x = torch.rand(4, 3, 32, 32)
    assert (model(_rot(x, 1)) - model(x)).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["parallel_rot4", "parallel_rotscale4", "weighted_rotscale4"])
def test_rotation_branch_features_rotate_with_the_input(name):
    torch.manual_seed(0)
    model = _bn_stats(create_model(name))
    branch = model.stem.branches["rot"]
    x = model.normalize(torch.rand(2, 3, 32, 32))
    pooled, pooled_rot = group_max_pool(branch(x)), group_max_pool(branch(_rot(x, 1)))
    torch.testing.assert_close(pooled_rot, _rot(pooled, 1), atol=1e-5, rtol=0)
    standard = model.stem.branches["standard"]
    assert not torch.allclose(standard(_rot(x, 1)), _rot(standard(x), 1), atol=1e-3)


@pytest.mark.parametrize("name", ["equivariant4", "equivariant4_c8", "cascaded4", "parallel_rot4"])
def test_p4_models_allow_repeated_input_gradients_in_eval_mode(name):
    """Iterative attacks call backward many times; e2cnn's cached eval filter must not hold a graph."""
    model = create_model(name)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(2):
        xi = x.clone().requires_grad_(True)
        model(xi).sum().backward()
        assert xi.grad is not None and xi.grad.abs().sum() > 0


# --- issue 24: every fully rotation-equivariant model (card group C4 or C8), shipped weights included, and C8

FULLY_EQUIVARIANT = [n for n in list_models() if get_card(n).group in ("C4", "C8")]
SHIPPED_FULLY_EQUIVARIANT = [n for n in FULLY_EQUIVARIANT
                             if get_card(n).sha256 and checkpoint_path(get_card(n)).is_file()]


def test_the_fully_equivariant_models_are_found_by_their_group():
    assert {"equivariant4", "equivariant10", "equivariant10_pgdat", "equivariant4_c8"} <= set(FULLY_EQUIVARIANT)
    assert {"equivariant4", "equivariant10", "equivariant10_pgdat"} <= set(SHIPPED_FULLY_EQUIVARIANT)


@pytest.mark.parametrize("name", FULLY_EQUIVARIANT)
def test_fully_equivariant_logits_are_rot90_invariant(name):
    """Random weights with non-trivial BN statistics: the architecture itself is invariant."""
    torch.manual_seed(0)
    model = _bn_stats(create_model(name))
    x = torch.rand(4, 3, 32, 32)
    for k in (1, 2, 3):
        torch.testing.assert_close(model(_rot(x, k)), model(x), atol=1e-5, rtol=1e-4)


@needs_shared_data
@pytest.mark.parametrize("name", SHIPPED_FULLY_EQUIVARIANT)
def test_shipped_fully_equivariant_predictions_survive_rot90_exactly(name):
    """Rotation by exactly 90° (no translation) leaves every prediction of the trained weights unchanged."""
    model = create_model(name, pretrained=True)
    x = load_cifar10("test", SHARED_DATA, n=100).x
    with torch.no_grad():
        logits = model(x)
        for k in (1, 2, 3):
            rotated = model(_rot(x, k))
            assert torch.equal(rotated.argmax(1), logits.argmax(1)), f"{name}: rot90 k={k} changed a prediction"
            torch.testing.assert_close(rotated, logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_c8_layers_rot90_cycles_orientations_by_two(k):
    torch.manual_seed(0)
    lift, block = CNLift(8, 3, 4, pool=True).eval(), CNBlock(8, 4, 2, pool=False).eval()
    x = torch.rand(2, 3, 16, 16)
    f = lambda t: block(lift(t))  # (2, 16, 8, 8): 2 fields x 8 orientations
    out, out_rot = f(x), f(_rot(x, k))
    n, c, h, w = out.shape
    expected = _rot(out, k).view(n, c // 8, 8, h, w).roll(2 * k, dims=2).view(n, c, h, w)
    torch.testing.assert_close(out_rot, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(out_rot, _rot(out, k).view(n, c // 8, 8, h, w).roll(k, dims=2).view(n, c, h, w),
                              atol=1e-3)


def _smooth_disk_images(n: int, size: int = 32) -> torch.Tensor:
    """Low-pass random images inside a centred disk (zero outside), so a 45° rotation loses no content."""
    g = torch.Generator().manual_seed(0)
    x = TF.gaussian_blur(torch.rand(n, 3, size, size, generator=g), kernel_size=9, sigma=2.5)
    return ((x - x.mean()) * 4 + 0.5).clamp(0, 1) * _disk(size, size / 2 - 4)


def _disk(size: int, radius: float) -> torch.Tensor:
    r = torch.arange(size) - (size - 1) / 2
    return ((r.view(-1, 1) ** 2 + r.view(1, -1) ** 2).sqrt() < radius).float()


# C8 at 45° is equivariant only approximately: the input and the feature map are resampled (bilinear) and a 3x3
# filter cannot represent a 45° rotation exactly. Measured on these smooth disk images: relative error 0.08 with
# the orientation cycle, 0.26 without it (over seeds 0-3: 0.02-0.29 vs 0.08-1.0). The tolerance is 0.15.
C8_45_DEGREE_TOLERANCE = 0.15


def test_c8_layers_are_45_degree_equivariant_within_the_documented_tolerance():
    torch.manual_seed(0)
    lift, block = CNLift(8, 3, 4, pool=False).eval(), CNBlock(8, 4, 2, pool=False).eval()
    x = _smooth_disk_images(4)
    f = lambda t: block(lift(t))
    rot45 = lambda t: TF.rotate(t, 45.0, interpolation=InterpolationMode.BILINEAR)  # counter-clockwise
    out, out_rot = f(x), f(rot45(x))
    n, c, h, w = out.shape
    inside = _disk(h, h / 2 - 4)  # away from the corners a 45° turn of the map brings in from outside

    def rel_err(shift):
        expected = rot45(out).view(n, c // 8, 8, h, w).roll(shift, dims=2).view(n, c, h, w)
        return ((out_rot - expected) * inside).norm() / (expected * inside).norm()

    assert rel_err(1) < C8_45_DEGREE_TOLERANCE
    assert rel_err(0) > 2 * rel_err(1) and rel_err(-1) > 2 * rel_err(1)  # the orientation cycle is what fits
