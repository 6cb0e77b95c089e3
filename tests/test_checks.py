"""The validity checks must catch models that hide their gradients, and trust ones that do not."""
import pytest
import torch
from torch import nn

from symbench.bench.checks import run_checks
from symbench.bench.checks.equivariance import equivariance_errors
from symbench.bench.suites import load_suite
from symbench.models import create_model

SUITE = """
name = "chk"
version = 1
n = 64
[[threats]]
norm = "linf"
eps = [0.0313725490196]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 10
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    p = tmp_path_factory.mktemp("s") / "chk.toml"
    p.write_text(SUITE)
    return load_suite(str(p))


class Quantized(nn.Module):
    """Non-differentiable input quantization in front of a model: zero input gradients everywhere."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(torch.round(x * 4) / 4)


class RoundedSoftmax(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return torch.round(torch.softmax(self.base(x), 1) * 100) / 100


class NoisyInput(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base((x + 0.05 * torch.randn_like(x)).clamp(0, 1))


def _check(model, suite, data):
    checks, verdict, _ = run_checks(model.eval(), suite, data.x, data.y, [], m=48)
    return checks, verdict


def test_undefended_model_is_trusted(tiny_model, tiny_data, suite):
    checks, verdict = _check(tiny_model, suite, tiny_data)
    assert verdict == "trusted", checks
    assert checks["gradients_nonzero"]["status"] == "pass"


def test_input_quantization_is_flagged_suspect(tiny_model, tiny_data, suite):
    checks, verdict = _check(Quantized(tiny_model), suite, tiny_data)
    assert verdict == "suspect"
    assert checks["gradients_nonzero"]["status"] == "fail"
    assert checks["large_eps_breaks_all"]["status"] == "fail"


def test_rounded_softmax_output_is_flagged(tiny_model, tiny_data, suite):
    checks, verdict = _check(RoundedSoftmax(tiny_model), suite, tiny_data)
    assert verdict == "suspect"
    assert checks["outputs_are_logits"]["status"] == "fail"
    assert checks["gradients_nonzero"]["status"] == "fail"


def test_random_model_without_eot_is_flagged(tiny_model, tiny_data, suite):
    checks, verdict = _check(NoisyInput(tiny_model), suite, tiny_data)
    assert checks["deterministic_or_eot"]["status"] == "fail" and verdict == "suspect"


def test_non_monotone_accuracy_in_eps_is_flagged(tiny_model, tiny_data, suite):
    from symbench.bench.run.runner import EpsOutcome

    t = torch.ones(10, dtype=torch.bool)
    lo, hi = t.clone(), t.clone()
    lo[:5] = False  # 50% at the small eps, 100% at the large one
    outs = [EpsOutcome("linf", 0.01, t, lo), EpsOutcome("linf", 0.03, t, hi)]
    checks, _, _ = run_checks(tiny_model, suite, tiny_data.x, tiny_data.y, outs, m=8, only=["monotone_in_eps"])
    assert checks["monotone_in_eps"]["status"] == "fail"


def test_equivariant_model_has_zero_rot90_logit_error_and_baseline_does_not():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    errs = {}
    for name in ["equivariant4", "baseline_cnn4"]:
        m = create_model(name).train()
        with torch.no_grad():
            m(torch.rand(16, 3, 32, 32))  # non-trivial BN statistics
        errs[name] = equivariance_errors(m.eval(), x)
    assert errs["equivariant4"]["rot90"] < 1e-5 and errs["equivariant4"]["features_rot90"] < 1e-5
    assert errs["baseline_cnn4"]["rot90"] > 1e-3
    assert errs["equivariant4"]["hflip"] > 1e-4  # P4 is not flip-invariant: the measurement can tell


def test_a_late_transfer_or_black_box_success_is_flagged(tiny_model, tiny_data, tmp_path):
    """The cascade's bookkeeping: an attack after the white-box ones that still breaks many examples."""
    from symbench.bench.run.runner import EpsOutcome

    p = tmp_path / "t.toml"
    p.write_text(SUITE + '[[attacks]]\nname = "transfer"\n[[attacks]]\nname = "square"\n')
    suite = load_suite(str(p))
    labels = [a.label for a in suite.attacks]
    clean = torch.ones(20, dtype=torch.bool)
    white = clean.clone()
    white[:5] = False                      # white-box attacks broke 5 of 20
    after_transfer = white.clone()
    after_transfer[5:12] = False           # the transfer broke 7 more: gradients were masked
    after = dict(zip(labels, [white, white, after_transfer, after_transfer]))
    outs = [EpsOutcome("linf", 0.0313725490196, clean, after_transfer, after)]
    checks, verdict, _ = run_checks(tiny_model, suite, tiny_data.x, tiny_data.y, outs, m=8,
                                    only=["transfer_not_stronger", "black_box_not_stronger"])
    assert checks["transfer_not_stronger"]["status"] == "fail" and verdict == "suspect"
    assert checks["black_box_not_stronger"]["status"] == "pass"  # square found nothing new


# ---- stronger-attack spot check, two-sided convergence (issue 17) ----------------------------------------------

WEAK = """
name = "weak{tag}"
version = 1
n = 200
batch_size = 100
[[threats]]
norm = "linf"
eps = [0.1]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 5
"""
APGD = '\n[[attacks]]\nname = "apgd_ce"{p}\n[[attacks]]\nname = "apgd_t"{p}\n'


def _weak_run(tmp_path, model, data, extra="", tag=""):
    from symbench.bench.run.runner import run_suite
    from symbench.bench.run.store import Store

    p = tmp_path / f"weak{tag}.toml"
    p.write_text(WEAK.format(tag=tag) + extra)
    s = load_suite(str(p))
    outs, key = run_suite(model, s, data, model_name="tiny", store_root=str(tmp_path / "store"), progress=False)
    return s, outs, Store(str(tmp_path / "store"), "tiny", key)


def test_spot_check_flags_fgsm_pgd5_that_apgd_beats_and_not_the_suite_with_apgd(tiny_model, tiny_data, tmp_path,
                                                                                  monkeypatch):
    from symbench.bench.checks import spot

    s, outs, store = _weak_run(tmp_path, tiny_model, tiny_data)
    checks, verdict, _ = run_checks(tiny_model, s, tiny_data.x, tiny_data.y, outs, m=8, only=["apgd_not_stronger"],
                                    store=store)
    c = checks["apgd_not_stronger"]
    assert c["status"] == "fail" and verdict == "suspect", c  # measured: 8 of 28 survivors, ~4 points
    assert "forward passes" in c["detail"] and list(c["rows"]) == ["linf_0.10000000"]
    # per-example results are in the run's store: a rerun attacks nothing
    monkeypatch.setattr(spot, "run_cascade", lambda *a, **k: pytest.fail("spot check recomputed"))
    again, _, _ = run_checks(tiny_model, s, tiny_data.x, tiny_data.y, outs, m=8, only=["apgd_not_stronger"],
                             store=store)
    assert again["apgd_not_stronger"] == c
    monkeypatch.undo()
    # the same suite with AutoAttack's APGD-CE + APGD-T added: nothing left for the check (skips at the standard
    # budget; at half the budget it runs and agrees)
    for params, want in (("", {"skip"}), ("\niters = 50", {"pass"})):
        s2, outs2, store2 = _weak_run(tmp_path, tiny_model, tiny_data, APGD.format(p=params), tag=str(len(params)))
        assert outs2[0].robust_acc < outs[0].robust_acc - 0.02
        checks2, verdict2, _ = run_checks(tiny_model, s2, tiny_data.x, tiny_data.y, outs2, m=8,
                                          only=["apgd_not_stronger"], store=store2)
        assert checks2["apgd_not_stronger"]["status"] in want and verdict2 == "trusted", checks2


def test_an_undecided_spot_check_grows_its_subset_and_attacks_only_the_new_examples(tiny_model, tmp_path,
                                                                                     monkeypatch):
    """5% of 600 survivors fall to APGD (3 points): 3 of 64 cannot say whether that is above 2, so the subset
    doubles to 256, each stage attacking only what it adds; a row with 0 of 64 at 10% robust stops at 64."""
    from symbench.bench.checks import spot
    from symbench.bench.run.runner import EpsOutcome
    from symbench.bench.run.store import Store
    from symbench.bench.suites import load_suite

    p = tmp_path / "w.toml"
    p.write_text(WEAK.format(tag="").replace("batch_size = 100", "batch_size = 100\nspot_check_max_n = 256"))
    suite = load_suite(str(p))
    calls = []

    def fake(model, steps, x, y, idx, draws, num_classes, breaks):
        calls.append(idx.tolist())
        hit = [breaks(i) for i in idx.tolist()]
        return spot.Cascade(idx.tolist(), ["apgd_ce" if h else None for h in hit], [0.0 if h else 1.0 for h in hit],
                            {"apgd_ce": sum(hit), "apgd_t": 0}, 10 * len(idx), 10 * len(idx), 0.0)

    x, y = torch.zeros(1000, 3, 4, 4), torch.zeros(1000, dtype=torch.long)
    robust = torch.zeros(1000, dtype=torch.bool)
    robust[:600] = True
    o = EpsOutcome("linf", 0.1, torch.ones(1000, dtype=torch.bool), robust)
    store = Store(str(tmp_path / "store"), "tiny", "k")
    monkeypatch.setattr(spot, "run_cascade", lambda *a: fake(*a, breaks=lambda i: i % 20 == 0))
    status, detail, num = spot.spot_check_row(tiny_model, suite, x, y, o, draws=1, seed=0, store=store)
    assert [len(c) for c in calls] == [64, 64, 128] and num["subset"] == 256, detail
    assert sorted(sum(calls, [])) == spot.sample_survivors(robust, 256, spot.seed_of(0, "spot", "linf", 0.1)).tolist()
    assert calls[0] == spot.sample_survivors(robust, 64, spot.seed_of(0, "spot", "linf", 0.1)).tolist()
    assert status == "fail" and abs(num["drop"] - num["broken"] / 256 * 0.6) < 1e-6 and "grown 64->256" in detail
    monkeypatch.setattr(spot, "run_cascade", lambda *a: pytest.fail("spot check recomputed"))
    assert spot.spot_check_row(tiny_model, suite, x, y, o, draws=1, seed=0, store=store)[1] == detail  # all stored
    # by default it may grow to every survivor: only the examples past the first 256 are attacked
    p.write_text(WEAK.format(tag=""))
    calls.clear()
    monkeypatch.setattr(spot, "run_cascade", lambda *a: fake(*a, breaks=lambda i: i % 20 == 0))
    status, detail, num = spot.spot_check_row(tiny_model, load_suite(str(p)), x, y, o, draws=1, seed=0, store=store)
    first = set(spot.sample_survivors(robust, 256, spot.seed_of(0, "spot", "linf", 0.1)).tolist())
    assert calls and not first & set(sum(calls, [])) and num["subset"] > 256 and status == "fail", detail
    calls.clear()
    robust[100:] = False  # 10% robust, nothing breaks: 0 of 64 bounds the drop below 0.6 points at once
    monkeypatch.setattr(spot, "run_cascade", lambda *a: fake(*a, breaks=lambda i: False))
    status, detail, num = spot.spot_check_row(tiny_model, suite, x, y, o, draws=1, seed=0)
    assert status == "pass" and [len(c) for c in calls] == [64] and "grown" not in detail


def test_row_checks_judge_each_row_by_its_own_eps(tiny_model):
    from symbench.bench.checks import row_checks
    from symbench.bench.run.runner import EpsOutcome

    t = torch.ones(4, dtype=torch.bool)
    cached = {"checks": {"apgd_not_stronger": {"status": "fail", "detail": "worst", "rows": {
        "linf_0.01000000": {"status": "pass", "detail": "ok"}, "linf_0.03000000": {"status": "fail", "detail": "bad"}}},
        "outputs_are_logits": {"status": "pass", "detail": "logits"}}, "verdict": "suspect", "check_versions": {}}
    small, large = (row_checks(cached, EpsOutcome("linf", e, t, t)) for e in (0.01, 0.03))
    assert small["verdict"] == "trusted" and small["checks"]["apgd_not_stronger"] == {"status": "pass", "detail": "ok"}
    assert large["verdict"] == "suspect" and "check_versions" not in large


class SignFlipNoise(nn.Module):
    """Small random input noise, and a gradient that points the right way or the opposite at random on every
    pass (per example): a randomized model whose gradients are noise-dominated, like a defense attacked
    without EOT."""

    def __init__(self, base, sigma=0.01):
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x):
        s = (torch.rand(len(x), 1, 1, 1) < 0.5).float() * 2 - 1
        x = x.detach() + s * (x - x.detach())
        return self.base((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


def test_more_steps_making_the_attack_weaker_fails_on_noisy_gradients_and_passes_deterministic(tiny_model, tiny_data,
                                                                                              suite):
    s = suite.with_overrides(eps=[0.1])
    noisy, _, _ = run_checks(SignFlipNoise(tiny_model).eval(), s, tiny_data.x, tiny_data.y, [], m=48,
                             only=["more_steps_converged"])
    det, _, _ = run_checks(tiny_model, s, tiny_data.x, tiny_data.y, [], m=48, only=["more_steps_converged"])
    assert noisy["more_steps_converged"]["status"] == "fail", noisy  # measured: PGD-10 ~0.8 vs PGD-40 ~0.93
    assert "weaker" in noisy["more_steps_converged"]["detail"] and "8 draws" in noisy["more_steps_converged"]["detail"]
    assert det["more_steps_converged"]["status"] == "pass", det


def test_iterative_tie_with_survivors_warns(tiny_model, tiny_data, suite):
    from symbench.bench.checks import CheckContext, iterative_beats_single_step

    x, y = tiny_data.x[:16], tiny_data.y[:16]
    ctx = CheckContext(tiny_model, suite, [], x, y, "linf", 8 / 255)
    ctx.cache[("art_fgsm", None, None, ())] = x.clone()  # neither attack moved: an exact tie, all survive
    ctx.cache[("ta_pgd", None, None, (("steps", 10),))] = x.clone()
    r = iterative_beats_single_step(ctx)
    assert r.status == "warn" and "exact tie" in r.detail
    ctx.cache[("ta_pgd", None, None, (("steps", 10),))] = x.clone().fill_(0.5)  # PGD-10 breaks most: a clear win
    assert iterative_beats_single_step(ctx).status == "pass"


def test_cached_checks_run_only_what_the_stored_record_lacks(tiny_model, tiny_data, suite, tmp_path, monkeypatch):
    import symbench.bench.checks as chk
    from symbench.bench.run.store import Store

    store = Store(str(tmp_path), "tiny", "k")
    rec = chk.cached_checks(tiny_model, suite, tiny_data.x, tiny_data.y, [], store, m=8)
    assert set(rec["checks"]) == set(chk.CHECKS) and rec["check_versions"] == chk.CHECK_VERSIONS
    ran = []
    real = chk.run_checks
    monkeypatch.setattr(chk, "run_checks", lambda *a, **k: ran.append(k["only"]) or real(*a, **k))
    monkeypatch.setitem(chk.CHECK_VERSIONS, "outputs_are_logits", 99)  # a changed rule: only it reruns
    rec2 = chk.cached_checks(tiny_model, suite, tiny_data.x, tiny_data.y, [], store, m=8)
    assert ran == [["outputs_are_logits"]] and rec2["checks"] == rec["checks"]
