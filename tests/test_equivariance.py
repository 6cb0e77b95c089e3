import pytest
import torch

from symbench.models import create_model
from symbench.models.layers import P4Block, P4Lift, group_max_pool


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


@pytest.mark.parametrize("name", ["equivariant4", "equivariant10"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_equivariant_models_have_rotation_invariant_logits(name, k):
    torch.manual_seed(0)
    model = _bn_stats(create_model(name))
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(model(_rot(x, k)), model(x), atol=1e-5, rtol=1e-4)


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


@pytest.mark.parametrize("name", ["equivariant4", "cascaded4", "parallel_rot4"])
def test_p4_models_allow_repeated_input_gradients_in_eval_mode(name):
    """Iterative attacks call backward many times; e2cnn's cached eval filter must not hold a graph."""
    model = create_model(name)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(2):
        xi = x.clone().requires_grad_(True)
        model(xi).sum().backward()
        assert xi.grad is not None and xi.grad.abs().sum() > 0
