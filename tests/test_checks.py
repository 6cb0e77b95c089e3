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
