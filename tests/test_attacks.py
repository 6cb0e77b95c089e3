import pytest
import torch

from symbench.bench.attacks import attack_class, create_attack, list_attacks
from symbench.bench.attacks.base import UnknownAttackError

# cheap parameters so every attack runs in about a second on the tiny model
CHEAP = {"art_pgd": {"steps": 5}, "ta_pgd": {"steps": 5}, "ta_mim": {"steps": 5}, "ta_cw": {"steps": 10},
         **{n: {"iters": 5, "queries": 50, "targets": 2}
            for n in ["apgd_ce", "apgd_dlr", "apgd_t", "fab_t", "square", "autoattack", "autoattack_rand"]}}
EPS = {"linf": 8 / 255, "l2": 0.5}
CASES = [(n, norm) for n in list_attacks() for norm in attack_class(n).norms]


def _acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("name,norm", CASES)
def test_attack_stays_in_ball_and_unit_box_and_leaves_model_in_eval(name, norm, tiny_model, tiny_data):
    x, y = tiny_data.x[:12], tiny_data.y[:12]
    eps = EPS[norm]
    adv = create_attack(name, norm=norm, **CHEAP.get(name, {}))(tiny_model, x, y, eps, seed=0)
    d = (adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert not tiny_model.training


@pytest.mark.parametrize("name", ["art_pgd", "ta_pgd", "apgd_ce"])
def test_seeded_attacks_are_reproducible(name, tiny_model, tiny_data):
    x, y = tiny_data.x[:12], tiny_data.y[:12]
    atk = create_attack(name, **CHEAP.get(name, {}))
    torch.testing.assert_close(atk(tiny_model, x, y, 4 / 255, seed=3), atk(tiny_model, x, y, 4 / 255, seed=3))


def test_clean_geq_fgsm_geq_pgd_and_large_eps_breaks_everything(tiny_model, tiny_data):
    x, y = tiny_data.x, tiny_data.y
    eps = 0.06
    clean = _acc(tiny_model, x, y)
    fgsm = _acc(tiny_model, create_attack("art_fgsm")(tiny_model, x, y, eps, seed=0), y)
    pgd = _acc(tiny_model, create_attack("art_pgd", steps=20)(tiny_model, x, y, eps, seed=0), y)
    assert clean > 0.9
    assert clean > fgsm >= pgd and pgd < clean - 0.2
    big = _acc(tiny_model, create_attack("art_pgd", steps=20)(tiny_model, x, y, 0.5, seed=0), y)
    assert big <= 0.02


def test_bad_inputs_are_refused(tiny_model, tiny_data):
    x, y = tiny_data.x[:4], tiny_data.y[:4]
    atk = create_attack("art_fgsm")
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        atk(tiny_model, x * 255, y, 8 / 255)
    with pytest.raises(ValueError, match="0-255"):
        atk(tiny_model, x, y, 8.0)
    with pytest.raises(ValueError, match=">= 0"):
        atk(tiny_model, x, y, -0.1)
    with pytest.raises(UnknownAttackError, match="art_pgd"):
        create_attack("art_pdg")
    with pytest.raises(ValueError, match="no parameter"):
        create_attack("art_pgd", stepz=3)
    with pytest.raises(ValueError, match="supports norms"):
        create_attack("ta_mim", norm="l2")


def test_torchattacks_does_not_flip_a_fresh_wrapper_into_train_mode(tiny_model, tiny_data):
    wrapper = torch.nn.Sequential(tiny_model)  # fresh modules start in train mode
    wrapper.eval()
    create_attack("ta_pgd", steps=2)(wrapper, tiny_data.x[:4], tiny_data.y[:4], 8 / 255)
    assert not wrapper.training and not tiny_model.training


@pytest.mark.parametrize("name", ["art_pgd", "apgd_ce", "ta_pgd"])
def test_frozen_weights_give_the_unfrozen_adversarials_and_flags_come_back(name, tiny_model, tiny_data):
    """The harness freezes weights during an attack (ART calls loss.backward(), which would
    also compute every weight gradient). Same seed: bit-identical x_adv to the unfrozen toolkit path."""
    from symbench.bench.attacks.base import project, seed_everything

    x, y = tiny_data.x[:12], tiny_data.y[:12]
    atk = create_attack(name, **CHEAP.get(name, {}))
    params = list(tiny_model.parameters())
    params[0].requires_grad_(False)  # a weight the user froze stays frozen; the others come back
    try:
        tiny_model.zero_grad(set_to_none=True)
        fast = atk(tiny_model, x, y, 8 / 255, seed=5)
        assert [p.requires_grad for p in params] == [False] + [True] * (len(params) - 1)
        assert all(p.grad is None for p in params)  # no weight gradient was computed
        seed_everything(5)
        slow = project(atk.run(tiny_model, x, y, 8 / 255), x, 8 / 255, "linf")  # weights not frozen
        if name == "art_pgd":  # torchattacks and AutoAttack ask autograd for the input gradient only
            assert params[-1].grad is not None  # the work the freeze saves
    finally:
        params[0].requires_grad_(True)
        tiny_model.zero_grad(set_to_none=True)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, x)


def test_autoattack_rand_eot_draws_are_configurable(tiny_model, tiny_data):
    """EOT draws per APGD step reach AutoAttack: each extra draw adds the same number of passes."""
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            calls.append(len(x))
            return self.m(x)

    model = Counting(tiny_model).eval()
    x, y = tiny_data.x[:8], tiny_data.y[:8]
    passes = {}
    for k in (1, 2, 3):  # eps so small that no example falls: the same work per draw each time
        calls.clear()
        create_attack("autoattack_rand", iters=4, eot_iter=k)(model, x, y, 1e-4, seed=0)
        passes[k] = len(calls)
    assert passes[3] - passes[2] == passes[2] - passes[1] >= 2 * 4  # >= 4 steps of APGD-CE and of APGD-DLR
    with pytest.raises(ValueError, match="eot_iter"):
        create_attack("autoattack_rand", iters=2, eot_iter=0)(model, x, y, 1 / 255)


def test_apgd_dlr_is_untargeted_dlr_with_eot_and_breaks_the_plain_model(tiny_model, tiny_data):
    """The escalation's second step on a randomized model (AutoAttack-rand's apgd-dlr): it lowers accuracy
    as far as APGD-CE does on an undefended model, and its EOT draws reach AutoAttack."""
    x, y = tiny_data.x[:32], tiny_data.y[:32]
    dlr = create_attack("apgd_dlr", iters=10)(tiny_model, x, y, 8 / 255, seed=0)
    assert _acc(tiny_model, dlr, y) <= _acc(tiny_model, x, y) - 0.2
    calls = []
    model = torch.nn.Sequential(tiny_model).eval()
    model.register_forward_pre_hook(lambda m, a: calls.append(len(a[0])))
    x8 = x[:8]
    with torch.no_grad():
        y8 = tiny_model(x8).argmax(1)  # all correctly classified: every draw attacks all of them
    per_eot = {}
    for k in (1, 2, 3):  # eps so small that no example falls: the same work per draw each time
        calls.clear()
        create_attack("apgd_dlr", iters=4, eot_iter=k)(model, x8, y8, 1e-4, seed=0)
        per_eot[k] = len(calls)
    assert per_eot[3] - per_eot[2] == per_eot[2] - per_eot[1] >= 4  # one more pass per step per draw
