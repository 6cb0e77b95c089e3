"""Progress that moves inside a batch, per check, and a Ctrl-C that keeps every attack a batch finished (issue 25)."""
from __future__ import annotations

import logging
import time

import pytest

from symbench.bench.attacks import base as attack_base
from symbench.bench.run import progress as prog
from symbench.bench.run.runner import run_suite
from symbench.bench.suites import load_suite

# one batch holds every example (n <= batch size: the case whose bar sat at 0/1 for a whole phase), three attacks
ONE_BATCH = """
name = "onebatch"
version = 1
n = 48
seed = 0
batch_size = 64
[[threats]]
norm = "linf"
eps = [0.05]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "ta_pgd"
steps = 3
[[attacks]]
name = "art_pgd"
steps = 4
"""
VOLATILE = {"seconds"}


@pytest.fixture
def suite(tmp_path):
    p = tmp_path / "onebatch.toml"
    p.write_text(ONE_BATCH)
    return load_suite(str(p))


def _records(store_dir):
    import json

    return {str(p.relative_to(store_dir)): {k: v for k, v in json.loads(p.read_text()).items() if k not in VOLATILE}
            for p in sorted(store_dir.rglob("b*.json"))}


def _data(tiny_data, n=48):
    from symbench.bench.data import ImageData

    return ImageData(tiny_data.x[:n], tiny_data.y[:n], "synthetic-48", "", "test")


def test_a_ctrl_c_inside_a_batch_keeps_the_attacks_it_finished(tiny_model, tiny_data, suite, tmp_path, monkeypatch):
    data = _data(tiny_data)
    ref, _ = run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "ref", progress=False)
    real, calls = attack_base.Attack.__call__, []

    def interrupted(self, *a, **k):
        calls.append(self.name)
        if len(calls) == 3:  # Ctrl-C during the third attack of the only batch
            raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(attack_base.Attack, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "run", progress=False)
    assert any(".partial" in k for k in _records(tmp_path / "run"))   # the two finished attacks are kept
    calls.clear()
    got, _ = run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "run", progress=False)
    assert calls == ["art_pgd"]                                        # the rerun resumes at the third attack
    assert _records(tmp_path / "run") == _records(tmp_path / "ref")    # same final record, no partial left
    assert [o.robust.tolist() for o in got] == [o.robust.tolist() for o in ref]
    assert got[0].n_forward == ref[0].n_forward and got[0].n_backward == ref[0].n_backward


def test_a_damaged_partial_record_is_recomputed_not_trusted(tiny_model, tiny_data, suite, tmp_path, monkeypatch):
    import json

    data = _data(tiny_data)
    ref, _ = run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "ref", progress=False)
    real, calls = attack_base.Attack.__call__, []

    def interrupted(self, *a, **k):
        calls.append(self.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(attack_base.Attack, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "run", progress=False)
    (part,) = (tmp_path / "run").rglob("*.partial/b*.json")
    rec = json.loads(part.read_text())
    rec["robust"] = [True] * len(rec["robust"])                        # forged: more robust than FGSM left
    part.write_text(json.dumps(rec))
    calls.clear()
    monkeypatch.setattr(attack_base.Attack, "__call__", lambda self, *a, **k: calls.append(self.name) or real(self, *a, **k))
    got, _ = run_suite(tiny_model, suite, data, model_name="tiny", store_root=tmp_path / "run", progress=False)
    assert calls == ["art_fgsm", "ta_pgd", "art_pgd"] and got[0].robust.tolist() == ref[0].robust.tolist()


def test_progress_lines_move_inside_a_single_batch(tiny_model, tiny_data, suite, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(prog.ENV, "0.1")
    real = attack_base.Attack.__call__

    def slow(self, *a, **k):  # each attack takes a while, as AutoAttack's do on a real model
        time.sleep(0.5)
        return real(self, *a, **k)
    monkeypatch.setattr(attack_base.Attack, "__call__", slow)
    with caplog.at_level(logging.INFO, logger="symbench"):
        run_suite(tiny_model, suite, _data(tiny_data), model_name="tiny", store_root=tmp_path / "s", progress=True)
    lines = [r.getMessage() for r in caplog.records if "onebatch linf" in r.getMessage()]
    for i, label in enumerate(["art_fgsm", "ta_pgd[steps=3]", "art_pgd[steps=4]"], 1):
        assert any(f"batch 1/1, {label} ({i}/3) on " in line for line in lines), lines
    assert len(lines) >= 6 and any("per example" in line for line in lines)


def test_a_heartbeat_line_counts_iterations_against_the_attack_budget():
    class Counter:
        n_forward = n_backward = 0

    c = Counter()
    beat = prog.Heartbeat("m quick linf eps=8/255", counter=c, enabled=False)
    beat.set("batch 1/2, apgd_t (2/4) on 100 examples", examples=100, budget=(900, "steps"))
    c.n_forward, c.n_backward = 31_000, 30_000
    line = beat.line()
    assert line.startswith("m quick linf eps=8/255: batch 1/2, apgd_t (2/4) on 100 examples, 0 s")
    assert "~300 of ~900 steps per example" in line and "31,000 forward / 30,000 backward passes" in line


def test_a_silent_phase_still_reports_every_interval():
    got = []
    with prog.Heartbeat("checks", every=0.05, emit=got.append) as beat:
        beat.set("apgd_not_stronger (7/7)")
        time.sleep(0.5)
    assert len(got) >= 3 and all(line.startswith("checks: apgd_not_stronger (7/7)") for line in got)
    n = len(got)
    time.sleep(0.2)
    assert len(got) == n                                               # the thread stops with the phase


def test_the_checks_report_each_check(tiny_model, tiny_data, tmp_path, caplog):
    from symbench.bench.checks import CHECKS, run_checks

    (tmp_path / "s.toml").write_text(ONE_BATCH)
    suite = load_suite(str(tmp_path / "s.toml"))
    with caplog.at_level(logging.INFO, logger="symbench"):
        run_checks(tiny_model, suite, tiny_data.x[:48], tiny_data.y[:48], [], m=8,
                   only=["iterative_beats_single_step", "gradients_nonzero"])
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("check 1/2 iterative_beats_single_step: ") for line in lines), lines
    assert any(line.startswith("check 2/2 gradients_nonzero: ") for line in lines)
    assert list(CHECKS).index("gradients_nonzero") > list(CHECKS).index("iterative_beats_single_step")


def test_the_pass_counter_of_the_checks_and_escalation_counts_backward_passes_too(tiny_model, tiny_data):
    """The checks' and the escalation's progress lines said "0 backward passes" while APGD ran on every line:
    the counter hooked forward passes only. Gradients are unchanged by counting."""
    import torch

    x, y = tiny_data.x[:6].clone().requires_grad_(True), tiny_data.y[:6]
    want = torch.autograd.grad(torch.nn.functional.cross_entropy(tiny_model(x), y), x)[0]
    with prog.PassCounter(tiny_model) as pc:
        with torch.no_grad():
            tiny_model(x[:4])
        got = torch.autograd.grad(torch.nn.functional.cross_entropy(tiny_model(x), y), x)[0]
    assert (pc.n_forward, pc.n_backward) == (10, 6)
    assert torch.equal(got, want)
    torch.autograd.grad(tiny_model(x).sum(), x)  # after the with: hooks removed, nothing counted
    assert (pc.n_forward, pc.n_backward) == (10, 6)
