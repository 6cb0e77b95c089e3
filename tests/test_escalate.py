"""Escalation brings gradient-hiding trap models down to their undefended base's robustness.

Each trap wraps the same tiny trained CNN and hides or scrambles its gradients: input quantization
(zero gradients), softmax x1000 outputs (saturated: zero gradients, flat margins), random input noise
(one draw per gradient). A suite of FGSM + PGD-10 over-reports all three; the validity checks flag
them; escalation (transfer from the base, APGD with EOT, Square) gives each a number within a few
points of the base's own FGSM + PGD-10 + APGD-CE + APGD-T worst case. Budgets are test-sized.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_data
from symbench.bench.checks import cached_checks
from symbench.bench.checks.escalate import escalate, flagged
from symbench.bench.run.runner import run_suite
from symbench.bench.run.store import Store
from symbench.bench.suites import load_suite

SUITE = """
name = "trap{tag}"
version = 1
n = 100
batch_size = 100
checks_m = 16
spot_check_n = 16
spot_check_iters = 10
spot_check_eot = 2
[[threats]]
norm = "linf"
eps = [0.06]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 10
"""
APGD = '[[attacks]]\nname = "apgd_ce"\niters = 20\n[[attacks]]\nname = "apgd_t"\niters = 20\n'


class Quantized(nn.Module):
    def __init__(self, base, levels=16):
        super().__init__()
        self.base, self.q = base, levels - 1

    def forward(self, x):
        return self.base(torch.round(x * self.q) / self.q)


class SaturatedSoftmax(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return torch.softmax(1000 * self.base(x), 1)


class NoisyInput(nn.Module):
    def __init__(self, base, sigma=0.1):
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x):
        return self.base((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("esc")
    (root / "trap.toml").write_text(SUITE.format(tag=""))
    (root / "ref.toml").write_text(SUITE.format(tag="_ref") + APGD)
    data = make_data(n=100)
    (ref,), _ = run_suite(tiny_model, load_suite(str(root / "ref.toml")), data, model_name="base",
                          store_root=str(root / "store"), progress=False)
    return root, data, ref.robust_acc


@pytest.mark.parametrize("trap", [Quantized, SaturatedSoftmax, NoisyInput])
def test_escalation_brings_each_trap_to_within_a_few_points_of_its_base(trap, tiny_model, setup):
    root, data, base_acc = setup
    model = trap(tiny_model).eval()
    suite = load_suite(str(root / "trap.toml"))
    outs, key = run_suite(model, suite, data, model_name=trap.__name__, store_root=str(root / "store"), progress=False)
    store = Store(str(root / "store"), trap.__name__, key)
    checks = cached_checks(model, suite, data.x, data.y, outs, store, m=16)
    assert checks["verdict"] == "suspect" and flagged(checks)
    if trap is not NoisyInput:  # (worst-of-k scoring already takes the noise trap's over-report away)
        assert outs[0].robust_acc > base_acc + 0.05  # the suite alone over-reports the trap
    esc, = escalate(model, suite, data, outs, checks=checks, surrogate=tiny_model, store=store, square_queries=300,
                    eot=4, apgd_iters=20)
    assert esc is not None and esc.suite_robust_acc == outs[0].robust_acc
    assert esc.robust_acc <= base_acc + 0.05, (esc.row_fields(), base_acc)
    assert sum(esc.broken_by.values()) == round((outs[0].robust_acc - esc.robust_acc) * len(data))
    fields = esc.row_fields()
    assert fields["escalated_robust_acc"] == esc.robust_acc and fields["escalation"]["surrogate"] == "TinyCNN"
    if trap is NoisyInput:  # randomized: AutoAttack-rand's pair with EOT (CE, then untargeted DLR), not APGD-T
        assert "apgd_eot4:apgd_dlr" in esc.remedies and not any(r.endswith("apgd_t") for r in esc.remedies[2:])
    if trap is SaturatedSoftmax:  # the cheap remedy ran first, before any transfer
        assert esc.remedies[0] == "logits:apgd_ce" and fields["escalation"]["effects"][0]["remedy"] == "logits"


def test_escalation_reruns_from_the_store_and_skips_rows_not_flagged(tiny_model, setup, monkeypatch):
    from symbench.bench.checks import escalate as esc_module

    root, data, _ = setup
    suite = load_suite(str(root / "trap.toml"))
    outs, key = run_suite(tiny_model, suite, data, model_name="plain", store_root=str(root / "store"), progress=False)
    store = Store(str(root / "store"), "plain", key)
    trusted = {"checks": {"gradients_nonzero": {"status": "pass", "detail": ""}}, "verdict": "trusted"}
    assert escalate(tiny_model, suite, data, outs, checks=trusted, store=store) == [None]
    first, = escalate(tiny_model, suite, data, outs, checks=trusted, store=store, force=True, square_queries=50,
                      apgd_iters=5, surrogate=False)
    assert first.notes and "no surrogate" in first.notes[0]  # transfer turned off
    monkeypatch.setattr(esc_module, "run_cascade", lambda *a, **k: pytest.fail("escalation recomputed"))
    again, = escalate(tiny_model, suite, data, outs, checks=trusted, store=store, force=True, square_queries=50,
                      apgd_iters=5, surrogate=False)
    assert torch.equal(again.robust, first.robust)


def test_bench_with_escalate_keeps_both_numbers_in_the_row(tiny_model, setup, tmp_path):
    """bench(escalate=True) on a defended model (input quantization around the tiny CNN): the row keeps the
    suite's robust_acc, adds escalated_robust_acc from transfer off the undefended base, and validates."""
    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.records import validate_row
    from symbench.models.defenses import QuantizeDefense

    root, _, base_acc = setup
    data = make_data(n=100)
    model = QuantizeDefense(tiny_model, levels=5).eval()
    rows = bench("tiny+quantize_defense", str(root / "trap.toml"), model=model, data=data,
                 store=str(tmp_path / "store"), progress=False, escalate=True)
    r = rows[0]
    validate_row(r)
    assert r["verdict"] == "suspect" and r["escalation"]["surrogate"] == "base"
    assert r["escalated_robust_acc"] < r["robust_acc"] - 0.1
    assert r["escalation"]["broken_by"]["transfer[base]:apgd_ce"] > 0
    assert r["draws_k"] == 1 and r["robust_acc_expected"] == r["robust_acc"]


def test_escalation_reports_progress_while_a_remedy_runs(tiny_model, setup, monkeypatch, caplog):
    """A remedy runs for minutes at full budget (Square's 5000 queries): the heartbeat names it meanwhile."""
    import logging
    import time

    from symbench.bench.checks import escalate as esc_module

    root, data, _ = setup
    suite = load_suite(str(root / "trap.toml"))
    outs, key = run_suite(tiny_model, suite, data, model_name="plain", store_root=str(root / "store"), progress=False)
    real = esc_module.run_cascade

    def slow(*args, **kwargs):  # each remedy now outlasts several heartbeat intervals
        time.sleep(0.4)
        return real(*args, **kwargs)

    monkeypatch.setattr(esc_module, "run_cascade", slow)
    monkeypatch.setenv("SYMBENCH_PROGRESS_SECONDS", "0.05")
    trusted = {"checks": {"gradients_nonzero": {"status": "pass", "detail": ""}}, "verdict": "trusted"}
    with caplog.at_level(logging.INFO, logger="symbench"):
        escalate(tiny_model, suite, data, outs, checks=trusted, store=None, force=True, square_queries=20,
                 apgd_iters=3, surrogate=False)
    beats = [r.getMessage() for r in caplog.records if r.getMessage().startswith("escalation linf eps=0.0600: ")]
    assert any("apgd (1/2)" in b for b in beats) and any("square20 (2/2)" in b for b in beats), beats


def test_a_killed_escalation_resumes_from_the_pieces_it_finished(tiny_model, setup, tmp_path, monkeypatch):
    """Remedies are stored a piece of survivors at a time: killed after two pieces, a rerun computes only the
    rest and gives what an uninterrupted run gives; a third run computes nothing."""
    from symbench.bench.checks import escalate as esc_module

    root, data, _ = setup
    (tmp_path / "piece.toml").write_text(SUITE.format(tag="_piece").replace("version = 1\n",
                                                                           "version = 1\nescalate_piece = 4\n"))
    suite = load_suite(str(tmp_path / "piece.toml"))
    outs, key = run_suite(tiny_model, suite, data, model_name="plain", store_root=str(tmp_path / "s"), progress=False)
    assert outs[0].robust.sum() > 8  # several pieces
    real, calls = esc_module.run_cascade, []

    def counted(*a, **k):
        calls.append(1)
        if kill_at and len(calls) == kill_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(esc_module, "run_cascade", counted)
    kw = dict(checks=None, force=True, square_queries=30, apgd_iters=5, surrogate=False)
    kill_at = 0
    whole, = escalate(tiny_model, suite, data, outs, store=Store(str(tmp_path / "a"), "plain", key), **kw)
    n_pieces = len(calls)
    assert n_pieces > 2 and whole.piece == 4 and whole.row_fields()["escalation"]["piece"] == 4
    calls.clear()
    kill_at = 3
    killed = Store(str(tmp_path / "b"), "plain", key)
    with pytest.raises(KeyboardInterrupt):
        escalate(tiny_model, suite, data, outs, store=killed, **kw)
    calls.clear()
    kill_at = 0
    resumed, = escalate(tiny_model, suite, data, outs, store=killed, **kw)
    assert len(calls) == n_pieces - 2
    assert torch.equal(resumed.robust, whole.robust) and resumed.broken_by == whole.broken_by
    assert resumed.id == whole.id
    calls.clear()
    escalate(tiny_model, suite, data, outs, store=killed, **kw)
    assert calls == []
