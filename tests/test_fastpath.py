"""The fast path (bench/run/fastpath.py): same outcomes as eager, its own store key, eager keys untouched."""
from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from conftest import SHARED_DATA, needs_shared_data
from symbench.bench.run import fastpath
from symbench.bench.run.fastpath import CHANNELS_LAST, CHANNELS_LAST_FORWARD, FOLD_BN


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv(fastpath.ENV, "1")


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setenv(fastpath.ENV, "0")  # and restored after the test, whatever the code under test sets


def _small(name: str, base: int) -> nn.Module:
    from symbench.models import create_model

    torch.manual_seed(0)
    return create_model(name, base=base).eval()


def test_layout_for_follows_the_setting_the_family_and_randomness(monkeypatch, eager):
    from symbench.models.defenses.base import Defense

    plain, equi = _small("baseline_cnn4", 4), _small("equivariant4", 8)
    assert fastpath.layout_for(plain) is None and fastpath.layout_for(equi) is None  # off by default
    monkeypatch.setenv(fastpath.ENV, "1")
    assert fastpath.layout_for(plain) == f"{CHANNELS_LAST}+{FOLD_BN}"   # 4 conv→BN pairs to fold
    assert fastpath.layout_for(equi) == CHANNELS_LAST_FORWARD           # e2cnn: only no-grad passes switch
    assert fastpath.layout_for(nn.Sequential(nn.Conv2d(3, 4, 3))) is None  # no card: unmeasured code
    assert fastpath.layout_for(Defense(plain)) is None                   # defenses stay eager
    monkeypatch.setenv(fastpath.ENV, "0")
    assert fastpath.layout_for(plain) is None


def test_a_defenses_base_stays_eager_also_when_run_on_its_own(fast):
    """The defense's base reference runs the base by itself after the defended model: with --fast it must not
    switch the base (and so the defended model, under its eager key) to another layout."""
    from symbench.models.defenses.base import Defense

    base = _small("baseline_cnn4", 4)
    assert fastpath.prepare(base) is not None  # a plain run of the base earlier in the process
    defended = Defense(base)
    assert fastpath.prepare(defended) is None
    assert fastpath.current_layout(base) is None and fastpath.layout_for(base) is None
    assert fastpath.prepare(base) is None and not fastpath.foldable_pairs(base)[0][0].__dict__.get("forward")


def test_folded_batchnorm_is_bn_of_conv_and_train_mode_falls_back():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1, bias=True), nn.BatchNorm2d(5)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    seq = nn.Sequential(conv, bn, nn.ReLU()).eval()
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        ref = seq(x)
        w, b = fastpath._folded(conv, bn)
        by_hand = torch.relu(nn.functional.conv2d(x, w, b, padding=1))
    torch.testing.assert_close(by_hand, ref, atol=1e-5, rtol=1e-5)
    assert fastpath.foldable_pairs(seq) == [(conv, bn)]
    fastpath._fold_bn(seq, True)
    with torch.no_grad():
        torch.testing.assert_close(seq(x), ref, atol=1e-5, rtol=1e-5)
        bn.running_mean.add_(0.5)  # statistics changed after folding: folded again, never stale
        want = torch.relu(nn.functional.batch_norm(nn.Conv2d.forward(conv, x), bn.running_mean, bn.running_var,
                                                   bn.weight, bn.bias, False, 0.0, bn.eps))
        torch.testing.assert_close(seq(x), want, atol=1e-5, rtol=1e-5)
    seq.train()  # train mode: the modules' own code (batch statistics), exactly
    fastpath._fold_bn(seq, False)
    want = seq(x)
    fastpath._fold_bn(seq, True)
    torch.testing.assert_close(seq(x), want, atol=0, rtol=0)


@pytest.mark.parametrize("name,base", [("baseline_cnn4", 4), ("cascaded4", 8), ("parallel_rotscale4", 4),
                                       ("equivariant4", 8)])
def test_prepare_changes_rounding_only_and_undoes_exactly(name, base, fast):
    from symbench.models.code_hash import code_sha256

    model = _small(name, base)
    x = torch.rand(6, 3, 32, 32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    code = code_sha256(model)

    def logits_and_grad():
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        out.sum().backward()
        return out.detach(), xg.grad

    with torch.no_grad():
        ref = model(x)
    ref_out, ref_grad = logits_and_grad()
    layout = fastpath.prepare(model)
    assert layout == fastpath.layout_for(model) is not None
    assert list(model.state_dict()) == list(state) and code_sha256(model) == code  # what keys results is intact
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-4, rtol=1e-4)
    out, grad = logits_and_grad()
    torch.testing.assert_close(out, ref_out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-3)
    assert grad.is_contiguous()  # attacks see NCHW gradients: their *_like random draws are eager's
    assert fastpath.prepare(model, None) is None
    with torch.no_grad():
        assert torch.equal(model(x), ref)  # back to eager, bit for bit
    assert all(torch.equal(v, model.state_dict()[k]) and v.stride() == model.state_dict()[k].stride()
               for k, v in state.items())


def test_run_key_records_the_layout_only_when_the_fast_path_applies(monkeypatch, tmp_path, eager):
    from symbench.bench.data import synthetic
    from symbench.bench.run.runner import row_fields, run_suite, suite_run_key
    from symbench.bench.suites import load_suite

    suite = load_suite("quick").with_overrides(n=4, batch_size=4)
    data = synthetic(n=4, seed=0, size=32)
    model = _small("baseline_cnn4", 4)
    key_eager = suite_run_key(model, suite, data)
    (o,), key = run_suite(model, suite, data, model_name="m", store_root=str(tmp_path), progress=False)
    assert key == key_eager and o.layout is None and "layout" not in row_fields(suite, o)
    monkeypatch.setenv(fastpath.ENV, "1")
    (f,), key_fast = run_suite(model, suite, data, model_name="m", store_root=str(tmp_path), progress=False)
    assert key_fast != key_eager and key_fast == suite_run_key(model, suite, data)
    assert f.layout == row_fields(suite, f)["layout"] == f"{CHANNELS_LAST}+{FOLD_BN}"
    assert fastpath.current_layout(model) == f.layout


@needs_shared_data
def test_published_store_keys_are_what_they_were(monkeypatch, eager):
    """The default path's key of published rows (issue 27 must not move them), and with --fast the key of a
    model the fast path does not apply to (a defense) stays the same too."""
    from symbench.bench.data import load_cifar10
    from symbench.bench.run.runner import suite_run_key
    from symbench.bench.suites import load_suite
    from symbench.models import create_model

    from symbench.paths import published_rows

    rows = [json.loads(line) for line in published_rows().read_text().splitlines() if line.strip()]
    row = next(r for r in rows if r["model"] == "baseline_cnn10_pgdat" and r["suite"] == "standard"
               and r["threat"] == "linf" and r["n"] == 1000)
    model = create_model("baseline_cnn10_pgdat", pretrained=True).eval()
    suite = load_suite("standard").with_overrides(n=1000, eps={"linf": [row["eps"]]})
    data = load_cifar10("test", SHARED_DATA, n=1000)
    assert suite_run_key(model, suite, data) == row["store_key"] == "b8091186e4b4568b"
    monkeypatch.setenv(fastpath.ENV, "1")
    assert suite_run_key(model, suite, data) != row["store_key"]
    defended = create_model("baseline_cnn10_pgdat+equi_defense", pretrained=True).eval()
    monkeypatch.setenv(fastpath.ENV, "0")
    eager_key = suite_run_key(defended, suite, data)
    monkeypatch.setenv(fastpath.ENV, "1")
    assert suite_run_key(defended, suite, data) == eager_key


def test_cli_fast_flag_and_default_threads(monkeypatch, eager):
    from symbench.cli import _threads, build_parser

    args = build_parser().parse_args(["bench", "--model", "cascaded", "--fast", "--threads", "1"])
    _threads(args)
    assert fastpath.fast_enabled() and torch.get_num_threads() == 1
    assert 1 <= fastpath.default_threads() <= (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------------
# outcome agreement on real checkpoints and data (slow: the full standard suite on a few examples)
# ------------------------------------------------------------------------------------------------

AGREEMENT_N = 8  # the first 8 CIFAR-10 test images: a fixed set


def _family_models() -> list[str]:
    from symbench.models import get_card, list_models

    chosen = {}
    for name in list_models():
        card = get_card(name)
        if card.family in fastpath.FAMILY_LAYOUT and card.sha256 and card.family not in chosen:
            chosen[card.family] = name
    return [chosen[f] for f in sorted(chosen)]


def _outcomes(model, suite, data, store) -> dict:
    from symbench.bench.run.runner import run_suite

    outs, key = run_suite(model, suite, data, model_name="agree", store_root=store, progress=False)
    per = {}
    for o in outs:
        tag = f"{suite.name}/{o.norm}"
        per[f"{tag}/clean"] = o.clean
        per[f"{tag}/robust"] = o.robust
        per.update({f"{tag}/{k}": v for k, v in o.robust_after.items()})
    return {"masks": per, "key": key, "layout": outs[0].layout}


@pytest.mark.slow
@needs_shared_data
@pytest.mark.parametrize("suite_name", ["quick", "standard"])
@pytest.mark.parametrize("name", _family_models())
def test_fast_path_outcomes_equal_eager(name, suite_name, monkeypatch, tmp_path):
    """Every per-example outcome (clean, after each attack, final) of the fast path equals the eager path's
    on the first 8 test images, per family; a difference is reported as a count per mask."""
    from symbench.bench.data import load_cifar10
    from symbench.bench.suites import load_suite
    from symbench.models import create_model

    data = load_cifar10("test", SHARED_DATA, n=AGREEMENT_N)
    suite = load_suite(suite_name).with_overrides(n=AGREEMENT_N)
    model = create_model(name, pretrained=True).eval()
    monkeypatch.setenv(fastpath.ENV, "0")
    eager = _outcomes(model, suite, data, str(tmp_path / "s"))
    monkeypatch.setenv(fastpath.ENV, "1")
    fast = _outcomes(model, suite, data, str(tmp_path / "s"))
    assert fast["layout"] == fastpath.FAMILY_LAYOUT[model.card.family] or fast["layout"].startswith(
        fastpath.FAMILY_LAYOUT[model.card.family] + "+")
    assert fast["key"] != eager["key"]  # never mixed in the store
    flips = {k: int((v != fast["masks"][k]).sum()) for k, v in eager["masks"].items()}
    assert sum(flips.values()) == 0, (f"{name} ({fast['layout']}): per-example outcomes that differ from eager, "
                                      f"of {AGREEMENT_N}: {({k: v for k, v in flips.items() if v})}")


def test_board_cost_from_the_rows_own_counts(tmp_path, monkeypatch):
    """Known answer: eager 1 / 2 ms per image (forward / forward+backward), fast 0.5 / 1 ms; a row of 1M
    forwards, 200k of them with backward, 3600 s wall on 2 threads, n=100."""
    from symbench.bench.perf import fastpath as perf

    monkeypatch.setattr(perf, "pass_times", lambda model, layouts, batch, reps=3: {
        lay: ({"fwd": 1.0, "fwd_bwd": 2.0} if lay is None else {"fwd": 0.5, "fwd_bwd": 1.0}) for lay in layouts})
    row = {"model": "baseline_cnn4", "suite": "standard", "suite_id": "standard@1#x", "threat": "linf", "eps": 0.03,
           "n": 100, "n_forward": 1_000_000, "n_backward": 200_000, "wall_seconds": 3600.0,
           "device": "cpu:x86_64x2threads", "store_key": "k"}
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")  # published twice, computed once
    b = perf.board_cost(rows, batch=8)
    h = b["hours"]
    assert b["rows"] == 1 and b["layouts"]["baseline_cnn4"] == f"{CHANNELS_LAST}+{FOLD_BN}"
    assert h["compute_eager"] == pytest.approx(1200 / 3600, abs=1e-3)  # 800k x 1 ms + 200k x 2 ms
    assert h["compute_fast"] == pytest.approx(600 / 3600, abs=1e-3)
    assert h["eager"] == pytest.approx(2.0, abs=1e-3)                  # 3600 s x 2 threads
    assert h["fast"] == pytest.approx(2.0 - 600 / 3600, abs=1e-3)      # minus the compute the fast path saves
    assert h["eager_10k"] == pytest.approx(200.0, abs=1e-2)            # n=100 -> 10,000


def test_default_threads_honours_omp_num_threads_and_outcomes_takes_threads(monkeypatch, tmp_path):
    """OMP_NUM_THREADS is what torch users set for K processes on one machine; --threads used to override it with
    every core. The commands that recompute (leaderboard outcomes, verify) take --threads like bench."""
    from symbench.cli import build_parser

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert fastpath.default_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "two")
        with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
            fastpath.default_threads()
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert fastpath.default_threads() == len(os.sched_getaffinity(0))
        rows = tmp_path / "rows.jsonl"
        rows.write_text("")
        torch.set_num_threads(2)
        args = build_parser().parse_args(["leaderboard", "outcomes", "--rows", str(rows), "--dry-run", "--threads", "1",
                                          "--store", str(tmp_path / "store"), "--no-progress"])
        assert args.func(args) == 0 and torch.get_num_threads() == 1
        args = build_parser().parse_args(["leaderboard", "outcomes", "--rows", str(rows), "--threads", "0"])
        with pytest.raises(ValueError, match="--threads"):
            args.func(args)
    finally:
        torch.set_num_threads(before)


def test_verify_and_recompute_find_a_fast_rows_run_from_an_eager_process(monkeypatch, tmp_path, eager):
    """A ``--fast`` row's store key includes its layout: ``leaderboard verify`` (and the outcomes recompute,
    through the same helper) run in a process without ``--fast`` must still find the run, and recompute it in
    the row's layout, matching every sampled example."""
    import symbench
    from conftest import DET_SUITE, make_data
    from symbench.bench.run.outcomes import from_store
    from symbench.bench.run.records import read_rows
    from symbench.leaderboard.verify import verify_row

    suite, rows, store = tmp_path / "det.toml", tmp_path / "rows.jsonl", tmp_path / "store"
    suite.write_text(DET_SUITE.replace("n = 60", "n = 16"))
    data = make_data(n=16, size=32)
    monkeypatch.setenv(fastpath.ENV, "1")
    symbench.benchmark(_small("baseline_cnn4", 4), str(suite), name="cnn", data=data, rows=rows, store=store,
                       checks=False, progress=False)
    monkeypatch.setenv(fastpath.ENV, "0")  # the verifier's own process: no --fast
    row = read_rows(rows)[0]
    assert row["layout"] == f"{CHANNELS_LAST}+{FOLD_BN}"
    check = verify_row(row, from_store(row, store), sample=8, model=_small("baseline_cnn4", 4), data=data,
                       suite=str(suite))
    assert check.ok and not check.mismatches, check.line()
    assert os.environ[fastpath.ENV] == "0"  # the row's setting was for the check only
