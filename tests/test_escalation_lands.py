"""Escalation lands (issue 26): in the rows and their key, in its own store groups, by default in `submit`,
with a default surrogate, the cheap logits remedy first, and on the boards as the headline number."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import SHARED_DATA, make_data, needs_shared_data
from symbench.bench.checks import escalate as E
from symbench.bench.run.evaluate import bench
from symbench.bench.run.records import read_rows
from symbench.leaderboard.boards import headline_acc, pick_rows, robust_cell, threat_board
from symbench.models import registry
from traps import Saturate, Softmax, ZeroGrad

# FGSM + PGD-10 at Linf 0.06 with test-sized check and escalation budgets
SUITE = """
name = "esc_trap"
version = 1
n = {n}
batch_size = {n}
checks_m = 8
spot_check_n = 8
spot_check_iters = 5
escalate_apgd_iters = {iters}
escalate_square_queries = 100
escalate_eot = 2
[[threats]]
norm = "linf"
eps = [{eps}]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 10
"""
APGD = '[[attacks]]\nname = "apgd_ce"\niters = {iters}\n[[attacks]]\nname = "apgd_t"\niters = {iters}\n'


def _suite(tmp_path, name="esc_trap", n=48, eps=0.06, iters=10, apgd=False) -> str:
    text = SUITE.format(n=n, eps=eps, iters=iters).replace('"esc_trap"', f'"{name}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(text + (APGD.format(iters=iters) if apgd else ""))
    return str(path)


def _groups(store: Path, prefix: str) -> set[str]:
    return {p.name for p in store.rglob(f"{prefix}*") if p.is_dir()}


def test_log_normalized_outputs_are_the_logits_up_to_a_constant(tiny_model):
    """The cheap remedy's known answer: log(p / sum p) of softmax(z) is z - logsumexp(z)."""
    x = make_data(n=8).x
    z = tiny_model(x)
    got = E.LogNormalized(Softmax(tiny_model))(x)
    torch.testing.assert_close(got, z - z.logsumexp(1, keepdim=True), atol=1e-4, rtol=0)
    torch.testing.assert_close(E.LogNormalized(lambda v: 1000 * torch.softmax(tiny_model(v), 1))(x),
                               got, atol=1e-4, rtol=0)  # a scaled probability vector gives the same


def test_default_surrogate_rule_picks_shipped_cnns_by_depth_and_clean_accuracy():
    card4, card10 = SimpleNamespace(card=SimpleNamespace(depth=4)), SimpleNamespace(card=SimpleNamespace(depth=10))
    assert E.default_surrogates(card4, 0.85) == ["baseline_cnn4"]
    assert E.default_surrogates(card10, 0.85) == ["baseline_cnn10"]
    assert E.default_surrogates(card10, 0.55) == ["baseline_cnn10", "baseline_cnn10_pgdat"]  # looks AT
    assert E.default_surrogates(torch.nn.Identity(), 0.9) == ["baseline_cnn10"]  # no card: the deeper CNN
    got, rule, notes = E.resolve_surrogates(card4, None, "cpu", 0.85)
    assert [n for n, _ in got] == ["baseline_cnn4"] and rule == E.DEFAULT_RULE and not notes
    assert not got[0][1].training
    assert E.resolve_surrogates(card4, False, "cpu")[0] == []


def test_the_default_rule_leaves_out_a_surrogate_that_is_the_model_itself():
    """baseline_cnn4's own rule would pick baseline_cnn4: a transfer from itself is the white-box APGD again.
    Its own weights under the fast path's layout are still itself; other weights are a real surrogate."""
    from symbench import load_model
    from symbench.bench.run import fastpath

    own = load_model("baseline_cnn4")
    got, _, notes = E.resolve_surrogates(own, None, "cpu", 0.85)
    assert got == [] and "left out: it is the model itself" in notes[0]
    fast = load_model("baseline_cnn4")
    fastpath.prepare(fast, "channels_last+fold_bn")
    assert E.same_weights(fast, own)
    with torch.no_grad():
        fast.fc.bias.add_(1e-3)  # the user's own weights for the same architecture
    assert [n for n, _ in E.resolve_surrogates(fast, None, "cpu", 0.85)[0]] == ["baseline_cnn4"]


def test_the_logits_remedy_runs_first_and_brings_softmax_outputs_to_the_base(tiny_model, tmp_path):
    """Softmax outputs flagged by outputs_are_logits: the logits remedy alone (no transfer) gives a number
    within 5 points of the base's FGSM + PGD + APGD worst case on the same examples."""
    data = make_data(n=48)
    store = str(tmp_path / "store")
    base = bench("base", _suite(tmp_path, "ref", apgd=True), model=tiny_model, data=data, store=store,
                 progress=False, checks=False)[0]
    model = Softmax(tiny_model).eval()
    r, = bench("softmax", _suite(tmp_path), model=model, data=data, store=store, progress=False, escalate=True,
               surrogate=False)
    assert "outputs_are_logits" in E.flagged(r)
    eff = r["escalation"]["effects"]
    assert eff[0]["remedy"] == "logits" and [e["remedy"] for e in eff][1:] == ["apgd", "square100"]
    assert abs(r["escalated_robust_acc"] - base["robust_acc"]) <= 0.05, (r["escalation"], base["robust_acc"])


def test_rerun_with_escalation_supersedes_and_the_two_modes_keep_separate_records(tiny_model, tmp_path, caplog,
                                                                                 monkeypatch):
    from symbench.models.defenses import QuantizeDefense

    data = make_data(n=48)
    store, rows_file = tmp_path / "store", tmp_path / "rows.jsonl"
    suite = _suite(tmp_path)
    model = QuantizeDefense(tiny_model, levels=5).eval()
    kw = dict(model=model, data=data, store=str(store), out=rows_file, progress=False)
    plain, = bench("tiny+quantize_defense", suite, **kw)
    assert E.flagged(plain) and "escalation_id" not in plain and "escalated_robust_acc" not in plain
    caplog.set_level(logging.WARNING)
    by_base, = bench("tiny+quantize_defense", suite, escalate=True, **kw)
    by_tiny, = bench("tiny+quantize_defense", suite, escalate=True, surrogate=tiny_model, **kw)
    assert not [r for r in caplog.records if "store record" in r.getMessage()], "one mode overwrote the other"
    on_disk = read_rows(rows_file)
    assert len(on_disk) == 3  # the unescalated row and one per escalation mode: nothing deduplicated away
    assert by_base["escalation_id"] != by_tiny["escalation_id"]
    assert by_base["escalation"]["surrogate"] == "base" and by_tiny["escalation"]["surrogate"] == "TinyCNN"
    assert by_base["escalated_robust_acc"] < plain["robust_acc"] - 0.1
    shown, hidden = pick_rows(on_disk)
    assert hidden == 2 and shown[0]["escalation_id"] == by_tiny["escalation_id"]  # the last rerun stands
    # each remedy and surrogate its own store group; the mask record the row names
    assert len(_groups(store, "escalate_transfer-base_")) == 1 and len(_groups(store, "escalate_transfer-TinyCNN_")) == 1
    for r in (by_base, by_tiny):
        mask = E.escalated_mask(r, store)
        assert len(mask) == r["n"] and sum(mask) / r["n"] == pytest.approx(r["escalated_robust_acc"], abs=1e-6)
        assert r["escalation"]["store_group"] in _groups(store, "escalated_")
    assert E.escalated_mask(plain, store) is None
    # a rerun of either mode costs nothing and appends nothing; the old unescalated row still equals itself
    monkeypatch.setattr(E, "run_cascade", lambda *a, **k: pytest.fail("escalation recomputed"))
    again, = bench("tiny+quantize_defense", suite, escalate=True, **kw)
    assert again["escalated_robust_acc"] == by_base["escalated_robust_acc"]
    bench("tiny+quantize_defense", suite, **kw)
    assert len(read_rows(rows_file)) == 3
    # a tampered mask is refused, never trusted
    rec_path = next(store.rglob(f"{by_base['escalation']['store_group']}/b00000.json"))
    rec = json.loads(rec_path.read_text())
    rec["robust"] = [True] * len(rec["robust"])
    rec_path.write_text(json.dumps(rec))
    assert E.escalated_mask(by_base, store) is None


def test_no_escalate_is_said_in_the_flagged_rows_and_bench_prints_the_command(tiny_model, tmp_path, capsys):
    from symbench.cli import _escalation_hints
    from symbench.models.defenses import QuantizeDefense

    model = QuantizeDefense(tiny_model, levels=5).eval()
    kw = dict(model=model, data=make_data(n=48), store=str(tmp_path / "store"), progress=False)
    skipped, = bench("tiny+quantize_defense", _suite(tmp_path), escalate_skipped="--no-escalate", **kw)
    assert skipped["escalation_skipped"] == "--no-escalate" and "escalated_robust_acc" not in skipped
    plain, = bench("tiny+quantize_defense", _suite(tmp_path), **kw)
    _escalation_hints([plain, skipped])
    err = capsys.readouterr().err
    assert err.count("escalate it with") == 1  # the skipped row was skipped on purpose
    assert "symbench bench --model tiny+quantize_defense --suite esc_trap --n 48 --escalate" in err


def _row(model, robust, verdict="trusted", escalated=None):
    r = {"model": model, "suite": "standard", "suite_id": "standard@1#x", "threat": "linf", "eps": 8 / 255, "n": 200,
         "clean_acc": 0.8, "robust_acc": robust, "verdict": verdict, "attacks": [], "kind": "measured"}
    if escalated is not None:
        r.update(escalated_robust_acc=escalated, escalation={"effects": [
            {"remedy": "transfer-baseline_cnn4", "attacked": 112, "broke": 110, "robust_acc_after": escalated}]})
    return r


def test_board_headlines_and_ranks_a_suspect_row_by_its_escalated_number():
    rows = [_row("hider", 0.56, "suspect", 0.01), _row("honest", 0.30), _row("noisy", 0.40, "suspect")]
    assert headline_acc(rows[0]) == (0.01, True) and headline_acc(rows[2]) == (0.40, False)
    c = robust_cell(rows[0])
    assert c.text == "≤ 1.0 escalated" and "suite's own 56.0" in c.sub and "broke 110 of 112" in c.title
    board = threat_board(rows, [], {}, set(), "linf", 8 / 255, "linf", "Linf", "8/255")
    order = [row.record["model"] for row in board.table.rows]
    assert order == ["noisy", "honest", "hider"]
    rec = board.table.rows[2].record
    assert rec["headline_robust_acc"] == 0.01 and rec["escalated"] and rec["robust_acc"] == 0.56


def test_the_suspect_list_leads_with_the_escalated_number():
    from symbench.leaderboard.sections import suspect_lines

    (where, text), (_, plain) = suspect_lines([_row("hider", 0.56, "suspect", 0.01), _row("noisy", 0.40, "suspect")])
    assert where.startswith("hider / standard") and text.startswith("escalated to 1.0% robust (the suite's own 56.0%)")
    assert "escalated" not in plain


# ------------------------------------------------------------------------------------------------
# through `symbench submit`, no flags, on real CIFAR-10 with the shipped baseline_cnn4
# ------------------------------------------------------------------------------------------------

ZEROGRAD = '''
from symbench.models import create_model, register_model
from traps import ZeroGrad


@register_model("trap_zerograd", base="baseline_cnn4", family="trap", group="C1", depth=4,
                description="baseline_cnn4 behind a detached input (zero gradients)", paper="none: a test trap")
def trap_zerograd(num_classes=10):
    return ZeroGrad(create_model("baseline_cnn4", num_classes=num_classes))
'''
SATURATE = '''
from symbench.models import create_model, register_model
from traps import Saturate


@register_model("trap_saturate", family="trap", group="C1", depth=4, checkpoint="trap_saturate.safetensors",
                sha256="{sha}", description="softmax of 1000x baseline_cnn4's logits", paper="none: a test trap")
def trap_saturate(num_classes=10):
    return Saturate(create_model("baseline_cnn4", num_classes=num_classes))
'''


@pytest.fixture
def private_registry(monkeypatch):
    registry.list_models()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@needs_shared_data
def test_gradient_hiding_wrappers_submitted_without_flags_are_escalated_to_their_base(tmp_path, private_registry):
    """Two traps around the shipped baseline_cnn4, one with card base= (its base is the surrogate), one with its
    own checkpoint and no base (the default rule picks baseline_cnn4): `symbench submit` with no escalation
    flag flags both, escalates both, and their escalated robust accuracy is within 5 points of
    baseline_cnn4's own under the suite plus APGD-CE + APGD-T on the same 32 images."""
    from symbench.cli import main
    from symbench.models import create_model
    from symbench.models.checkpoints import save_weights

    eps = 2 / 255
    suite, ref = _suite(tmp_path, n=32, eps=eps), _suite(tmp_path, "esc_ref", n=32, eps=eps, apgd=True)
    store, rows_file = tmp_path / "store", tmp_path / "rows.jsonl"
    base = bench("baseline_cnn4", ref, data_dir=SHARED_DATA, store=str(store), progress=False, checks=False,
                 device="cpu")[0]
    (tmp_path / "trap_zerograd.py").write_text(ZEROGRAD)
    sha = save_weights(Saturate(create_model("baseline_cnn4", pretrained=True)), tmp_path / "trap_saturate.safetensors")
    (tmp_path / "trap_saturate.py").write_text(SATURATE.replace("{sha}", sha))
    for name in ("trap_zerograd", "trap_saturate"):
        rc = main(["submit", "--file", str(tmp_path / f"{name}.py"), "--suites", suite, "--data-dir", str(SHARED_DATA),
                   "--out", str(rows_file), "--store", str(store), "--threads", "1", "--no-progress", "--device", "cpu"])
        assert rc == 0
    rows = {r["model"]: r for r in read_rows(rows_file)}
    for name, r in rows.items():
        assert r["verdict"] == "suspect" and "gradients_nonzero" in E.flagged(r), name
        assert r["robust_acc"] > base["robust_acc"] + 0.2, (name, r["robust_acc"], base["robust_acc"])  # it hid
        assert abs(r["escalated_robust_acc"] - base["robust_acc"]) <= 0.05, (name, r["escalation"], base["robust_acc"])
        assert headline_acc(r) == (r["escalated_robust_acc"], True)
        mask = E.escalated_mask(r, store)
        assert len(mask) == r["n"] and sum(mask) / r["n"] == pytest.approx(r["escalated_robust_acc"], abs=1e-6)
    zg, sat = rows["trap_zerograd"]["escalation"], rows["trap_saturate"]["escalation"]
    assert zg["surrogate"] == "baseline_cnn4" and "base=" in zg["surrogate_rule"]
    assert sat["surrogate"] == "baseline_cnn4" and sat["surrogate_rule"] == E.DEFAULT_RULE
    assert sat["effects"][0]["remedy"] == "logits"  # the cheap remedy first


def test_publish_escalates_by_default_and_plain_bench_keeps_it_opt_in():
    from symbench.cli import _escalation_kwargs, build_parser

    def kw(*argv):
        return _escalation_kwargs(build_parser().parse_args(["bench", "--model", "m", *argv]))

    assert kw() == {}
    assert kw("--escalate") == {"escalate": True, "surrogate": None}
    assert kw("--publish") == {"escalate": True, "surrogate": None}
    assert kw("--publish", "--no-escalate") == {"escalate_skipped": "--no-escalate"}
    assert kw("--escalate", "--surrogate", "baseline_cnn4") == {"escalate": True, "surrogate": "baseline_cnn4"}
    sub = build_parser().parse_args(["submit", "--model", "m"])
    assert sub.no_escalate is False and sub.surrogate is None


def test_leaderboard_add_refuses_a_flagged_row_without_an_escalated_number(tmp_path, capsys):
    """The one publish path that does not escalate (rows made elsewhere) refuses them before touching the board."""
    from symbench.cli import main
    from symbench.leaderboard.publish import check_escalated

    flagged = {**_row("hider", 0.56, verdict="suspect"),
               "checks": {"gradients_nonzero": {"status": "fail", "detail": "97% zero"}}}
    escalated = {**flagged, "escalated_robust_acc": 0.01}
    fine = _row("plain", 0.3)
    assert check_escalated([fine, escalated]) == [fine, escalated]
    with pytest.raises(ValueError, match="flagged for hidden or noisy gradients") as e:
        check_escalated([fine, flagged])
    assert "--model hider" in str(e.value) and "--escalate" in str(e.value)
    kept = check_escalated([fine, flagged], no_escalate=True)
    assert kept[1]["escalation_skipped"] == "--no-escalate at publish" and "escalation_skipped" not in flagged
    from symbench.paths import published_rows

    real = next(r for r in read_rows(published_rows()) if r.get("checks", {}).get("gradients_nonzero"))
    real = {**real, "checks": {**real["checks"], "gradients_nonzero": {"status": "fail", "detail": "97% zero"}}}
    src, board = tmp_path / "rows.jsonl", tmp_path / "board.jsonl"
    src.write_text(json.dumps(real) + "\n")
    assert main(["leaderboard", "add", str(src), "--board", str(board), "--force"]) != 0
    assert "escalate them first" in capsys.readouterr().err and not board.exists()


def test_validate_lists_shown_flagged_rows_without_an_escalated_number(tmp_path, capsys):
    from symbench.cli import main
    from symbench.paths import published_rows

    real = next(r for r in read_rows(published_rows()) if r.get("checks", {}).get("gradients_nonzero"))
    flagged = {**real, "checks": {**real["checks"], "gradients_nonzero": {"status": "fail", "detail": "97% zero"}}}
    board = tmp_path / "rows.jsonl"
    board.write_text(json.dumps(flagged) + "\n")
    assert main(["leaderboard", "validate", str(board)]) in (0, 1)    # outcomes may be missing in this copy
    out = capsys.readouterr().out
    assert "1 shown row(s) flagged for hidden or noisy gradients" in out and f"--model {real['model']}" in out
    board.write_text(json.dumps(flagged) + "\n" + json.dumps({**flagged, "escalated_robust_acc": 0.1}) + "\n")
    main(["leaderboard", "validate", str(board)])                      # the escalated rerun supersedes it
    assert "flagged for hidden" not in capsys.readouterr().out
