"""Seed 2's test-time defenses and the attacks that must break them, each against a known answer.

Fixtures are tiny (16x16 synthetic images, a two-conv CNN with ``features()`` trained for ~2 s) so
the whole file runs in well under a minute on one CPU thread.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from symbench.bench.attacks import create_attack
from symbench.bench.attacks.adaptive import adaptive_terms
from symbench.bench.run.evaluate import base_reference
from symbench.bench.attacks.bpda import bpda_logits, eot_grad
from symbench.bench.suites import load_suite
from symbench.models import UnknownModelError, create_model, get_card, resolve_name
from conftest import SHARED_DATA, needs_shared_data
from symbench.models.defenses import (EquivarianceDefense, InvarianceDefense, NoiseDefense, QuantizeDefense, equivariance_loss,
                             equivariance_score, find_defense, parse_transforms, with_params)

EPS = 0.06  # on the synthetic data, where undefended PGD-20 leaves ~60% of the tiny CNN's answers standing



class FeatCNN(nn.Module):
    """Two convs → ``features`` (N,32,H/2,W/2) → global max pool → linear, like the built-in models."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def features(self, x):
        return self.body((x - 0.5) / 0.25)

    def forward(self, x):
        return self.fc(self.features(x).amax((2, 3)))


@pytest.fixture(scope="module")
def feat_model(tiny_data):
    torch.manual_seed(0)
    model = FeatCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        loss = F.cross_entropy(model(tiny_data.x), tiny_data.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ---- names, cards, registry hook -------------------------------------------------------------------------------

def test_defended_names_resolve_canonically_and_cards_carry_the_flags():
    assert resolve_name("baseline_cnn+equi_defense") == "baseline_cnn4+equi_defense"
    assert resolve_name("baseline_cnn4+equi_defense:eps_v=8/255,steps=5") == "baseline_cnn4+equi_defense"
    assert resolve_name("baseline_cnn4+equi_defense:eps_v=4/255") == "baseline_cnn4+equi_defense:eps_v=0.015686275"
    card = get_card("baseline_cnn4+equi_defense:steps=3")
    assert card.randomized and card.test_time_opt and card.n_forward_passes == 3 * 6 + 1
    assert card.family == "baseline+equi_defense" and card.clean_acc is None
    assert not get_card("baseline_cnn4+quantize_defense").randomized
    assert with_params("baseline_cnn+equi_defense:steps=3", eps_v=0.5) == "baseline_cnn4+equi_defense:eps_v=0.5,steps=3"
    with pytest.raises(UnknownModelError, match="unknown defense"):
        resolve_name("baseline_cnn4+equi_defence")
    with pytest.raises(ValueError, match="no parameter"):
        resolve_name("baseline_cnn4+equi_defense:epsv=0.1")
    with pytest.raises(ValueError, match="unknown transformation"):
        resolve_name("baseline_cnn4+equi_defense:transforms=flip|shear")


def test_create_model_builds_an_eval_mode_defense_around_the_base():
    m = create_model("baseline_cnn4+inv_defense", eps_v=2 / 255)
    assert isinstance(m, InvarianceDefense) and not m.training and not m.base.training
    assert m.card.name == "baseline_cnn4+inv_defense:eps_v=0.0078431373"
    assert m.cfg["eps_v"] == pytest.approx(2 / 255)
    assert find_defense(torch.nn.Sequential()) is None


def test_store_key_of_a_defended_model_follows_its_settings_not_only_the_base_weights(feat_model, tiny_data):
    """A defense default changed in code keeps the name and the base's sha256; cached outcomes must not be reused."""
    from symbench.bench.run.runner import suite_run_key

    suite = load_suite("quick")
    key = lambda m: suite_run_key(m, suite, tiny_data)  # noqa: E731
    plain = key(feat_model)
    a, b = EquivarianceDefense(feat_model, steps=3), EquivarianceDefense(feat_model, steps=3)
    assert key(a) == key(b) != plain
    assert key(EquivarianceDefense(feat_model, steps=4)) != key(a)
    assert key(feat_model) == plain  # the undefended key is unchanged by the wrapper's existence


# ---- the transformations and the equivariance loss ---------------------------------------------------------------

def test_identity_features_are_equivariant_to_every_transformation(tiny_data):
    """With F = identity, g⁻¹ F g = id up to interpolation: L_equi is ~1 (exactly 1 for the flip)."""
    x = tiny_data.x[:8]
    ident = lambda z: z  # noqa: E731
    assert torch.allclose(equivariance_loss(ident, x, parse_transforms("flip")), torch.ones(8))
    for spec in ("resize0.75", "resize1.5", "rot15"):
        assert (equivariance_loss(ident, x, parse_transforms(spec)) > 0.97).all(), spec
    # a transformation that is NOT undone (jitter changes colours) costs similarity
    assert (equivariance_loss(ident, x, parse_transforms("jitter0.5")) < 1).all()


# ---- the defense itself -------------------------------------------------------------------------------------------

def test_purification_stays_in_the_eps_v_ball_and_is_seeded(feat_model, tiny_data):
    x = tiny_data.x[:16]
    d = EquivarianceDefense(feat_model, eps_v=4 / 255, steps=3)
    torch.manual_seed(1)
    a = d.purify(x)
    torch.manual_seed(1)
    b = d.purify(x)
    assert torch.equal(a, b) and not torch.equal(a, d.purify(x))  # seeded, yet random
    assert (a - x).abs().max() <= 4 / 255 + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert torch.equal(EquivarianceDefense(feat_model, eps_v=0.0).purify(x), x)


def test_naive_gradients_of_the_defended_model_are_not_masked(feat_model, tiny_data):
    """sign() has zero derivative, so autograd through forward() is the exact (≈ identity) gradient:
    nonzero for the equivariance defense; zero for quantization, which masks gradients."""
    x, y = tiny_data.x[:8].clone().requires_grad_(True), tiny_data.y[:8]
    for defense, nonzero in ((EquivarianceDefense(feat_model, steps=2), True), (QuantizeDefense(feat_model), False)):
        g, = torch.autograd.grad(F.cross_entropy(defense(x), y), x)
        assert bool((g.flatten(1).abs().amax(1) > 0).all()) == nonzero


def test_defense_restores_equivariance_on_attacked_inputs(feat_model, tiny_data):
    """The defense raises the equivariance measure of attacked inputs (its own objective, Table 4's last row)."""
    x, y = tiny_data.x[:64], tiny_data.y[:64]
    adv = create_attack("ta_pgd", steps=10)(feat_model, x, y, EPS, seed=0)
    d = EquivarianceDefense(feat_model, eps_v=EPS, steps=5)
    torch.manual_seed(0)
    attacked = equivariance_score(feat_model, adv)
    restored = equivariance_score(feat_model, d.purify(adv))
    # scores sit near 1 on this smooth synthetic data, so compare the equivariance errors 1 - score
    assert (1 - restored.mean()) < 0.8 * (1 - attacked.mean())
    assert (restored > attacked).float().mean() > 0.7


@needs_shared_data
def test_table4_trend_on_cifar10_with_the_trained_cascaded4():
    """Paper Table 4 on real images: an attack lowers feature equivariance, the defense restores it."""
    from symbench.bench.data import load_cifar10
    from symbench.models.checkpoints import CheckpointError

    try:
        base = create_model("cascaded4", pretrained=True)
    except CheckpointError:
        pytest.skip("cascaded4 has no trained checkpoint here")
    data = load_cifar10("test", SHARED_DATA, n=32)
    adv = create_attack("ta_pgd", steps=10)(base, data.x, data.y, 8 / 255, seed=0)
    torch.manual_seed(0)
    clean, attacked = equivariance_score(base, data.x).mean(), equivariance_score(base, adv).mean()
    restored = equivariance_score(base, EquivarianceDefense(base).purify(adv)).mean()
    assert attacked < clean - 0.01
    assert restored > attacked + 0.03


# ---- BPDA: the known-answer toy -------------------------------------------------------------------------------------

def test_bpda_breaks_quantization_that_fools_plain_pgd(tiny_model, tiny_data):
    """Quantization's zero gradient stops PGD; BPDA gets within a few points of PGD on the undefended model."""
    x, y = tiny_data.x, tiny_data.y
    defended = QuantizeDefense(tiny_model, levels=16)
    assert _acc(defended, x, y) > 0.95
    undefended_pgd = _acc(tiny_model, create_attack("ta_pgd", steps=20)(tiny_model, x, y, EPS, seed=0), y)
    naive = _acc(defended, create_attack("ta_pgd", steps=20)(defended, x, y, EPS, seed=0), y)
    bpda = _acc(defended, create_attack("bpda", steps=20, eot=1)(defended, x, y, EPS, seed=0), y)
    assert undefended_pgd < 0.8
    assert naive > undefended_pgd + 0.3          # gradient masking fools plain PGD
    assert abs(bpda - undefended_pgd) <= 0.04    # BPDA sees through it


def test_eot_gradient_variance_falls_with_draws(feat_model, tiny_data):
    """Var of the EOT-averaged gradient ~ 1/k (measured at adversarial points, where the loss is not ~0)."""
    x, y = tiny_data.x[:32], tiny_data.y[:32]
    x = create_attack("ta_pgd", steps=10)(feat_model, x, y, EPS, seed=0)
    d = NoiseDefense(feat_model, eps_v=0.05)

    def objective(xa):
        logits = bpda_logits(d, xa)
        return F.cross_entropy(logits, y, reduction="none"), logits

    def variance(k, reps=12):
        torch.manual_seed(0)
        gs = torch.stack([eot_grad(objective, x, y, k)[0] for _ in range(reps)])  # (reps, N,3,H,W)
        return gs.var(0).mean().item()

    v1, v4, v16 = variance(1), variance(4), variance(16)
    assert v4 < v1 / 2 and v16 < v4 / 2


# ---- adaptive attack I and the other defense-aware attacks ---------------------------------------------------------

def test_adaptive_equivariance_term_sends_gradient_to_delta(feat_model, tiny_data):
    """Eq. 6's λ·L_equi must be evaluated at x+δ; the official code's version (on clean x) had zero gradient."""
    x, y = tiny_data.x[:8], tiny_data.y[:8]
    ts = parse_transforms("flip|resize0.75|rot15")
    delta = (torch.rand_like(x) * 2 - 1).mul(0.01).requires_grad_(True)
    _, equi, _ = adaptive_terms(feat_model, ts, (x + delta).clamp(0, 1), y)
    g, = torch.autograd.grad(10.0 * equi.sum(), delta)
    assert (g.flatten(1).abs().amax(1) > 0).all()
    buggy = equivariance_loss(feat_model.features, x, ts)  # computed on the clean image
    g_bug, = torch.autograd.grad(buggy.sum() + 0 * delta.sum(), delta)
    assert g_bug.abs().max() == 0


@pytest.mark.parametrize("name,params", [("bpda", {"steps": 3, "eot": 2}), ("e2e", {"steps": 2, "eot": 1}),
                                         ("adaptive_equi", {"steps": 3, "lambdas": "0,10"}),
                                         ("transfer", {"steps": 3})])
def test_defense_aware_attacks_stay_in_ball_and_beat_no_attack(name, params, feat_model, tiny_data):
    x, y = tiny_data.x[:24], tiny_data.y[:24]
    d = EquivarianceDefense(feat_model, eps_v=2 / 255, steps=2)
    adv = create_attack(name, **params)(d, x, y, EPS, seed=0)
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert not d.training and not feat_model.training
    torch.manual_seed(0)
    assert _acc(d, adv, y) < _acc(d, x, y)


def test_adaptive_suite_loads_and_runs_through_the_runner_with_a_base_reference(feat_model, tmp_path):
    from symbench.bench.data import synthetic
    from symbench.bench.run.runner import run_suite

    suite = load_suite("adaptive")
    assert {a.name for a in suite.attacks} >= {"ta_pgd", "bpda", "adaptive_equi", "transfer", "autoattack_rand"}
    assert suite.option("base_reference") is True
    toml = tmp_path / "adaptive_tiny.toml"
    toml.write_text("""
name = "adaptive_tiny"
version = 1
n = 24
batch_size = 24
[[threats]]
norm = "linf"
eps = [0.06]
[[attacks]]
name = "ta_pgd"
steps = 3
[[attacks]]
name = "bpda"
steps = 3
eot = 2
[[attacks]]
name = "transfer"
steps = 3
""")
    tiny = load_suite(str(toml))
    data = synthetic(n=24, size=16)  # same class colours as tiny_data
    model = EquivarianceDefense(feat_model, eps_v=2 / 255, steps=2)
    outcomes, _ = run_suite(model, tiny, data, model_name="tiny+equi_defense", store_root=str(tmp_path / "store"),
                            progress=False)
    o = outcomes[0]
    accs = list(o.per_attack_acc().values())
    assert accs == sorted(accs, reverse=True) and accs[-1] == o.robust_acc <= o.clean_acc
    ref = base_reference(model, tiny, data, store_root=str(tmp_path / "store"))
    assert len(ref) == 1 and 0 <= ref[0]["base_robust_acc"] <= ref[0]["base_clean_acc"]
    assert base_reference(feat_model, tiny, data, store_root=str(tmp_path / "store")) is None


def test_defense_gain_is_a_paired_difference_on_the_same_examples(feat_model, tmp_path):
    """The adaptive row's gain over its base: per-example difference, interval and McNemar p (issue 17)."""
    from symbench.bench.checks.gain import defense_gains
    from symbench.bench.data import synthetic
    from symbench.bench.run.records import make_row, validate_row
    from symbench.bench.run.runner import run_suite
    from symbench.bench.run.stats import paired_comparison

    toml = tmp_path / "gain_tiny.toml"
    toml.write_text('name = "gain_tiny"\nversion = 1\nn = 24\nbatch_size = 24\ndraws = 2\n[[threats]]\n'
                    'norm = "linf"\neps = [0.06]\n[[attacks]]\nname = "bpda"\nsteps = 3\neot = 2\n')
    suite = load_suite(str(toml))
    data = synthetic(n=24, size=16)
    model = EquivarianceDefense(feat_model, eps_v=2 / 255, steps=2)
    root = str(tmp_path / "store")
    (o,), key = run_suite(model, suite, data, model_name="tiny+equi_defense", store_root=root, progress=False)
    assert o.draws == 2  # a defense is randomized: judged worst of k
    (g,) = defense_gains(model, suite, data, [o], store_root=root)
    (b,), _ = run_suite(feat_model, suite, data, model_name="model", store_root=root, progress=False)
    pc = paired_comparison(o.robust.tolist(), b.robust.tolist())
    gain = g["defense_gain"]
    assert gain["diff"] == pytest.approx(o.robust_acc - b.robust_acc) == pytest.approx(pc.diff)
    assert gain["low"] <= gain["diff"] <= gain["high"] and gain["p_value"] == pc.p_value
    assert gain["significant"] == (pc.p_value < 0.05) and gain["n"] == 24
    assert g["defense_clean_gain"]["diff"] == pytest.approx(o.clean_acc - b.clean_acc)
    assert defense_gains(feat_model, suite, data, [b], store_root=root) is None
    validate_row(make_row(model_name="tiny+equi_defense", card=None, ckpt_sha256=None, suite=suite, outcome=o,
                          data=data, device="cpu", store_key=key, extra=g))
