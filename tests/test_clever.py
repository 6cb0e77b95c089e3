"""CLEVER: a known answer on a linear model, the fast path against ART's clever_u, and the suite kind."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from symbench.bench.kinds.clever import (CLEVER_NOTE, CleverParams, clever_u_art, clever_u_fast, np_global_seed, run_clever,
                          summarize)
from symbench.bench.run.records import validate_row
from symbench.bench.run.store import Store
from symbench.bench.suites import parse_suite



@pytest.fixture(scope="module")
def cnn_data():
    """A seeded untrained conv net and 8 synthetic images labelled with its own predictions.

    Equality with ART and the suite mechanics need no training (the trained fixture costs seconds).
    """
    from symbench.bench.data import ImageData, synthetic

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)).eval()
    d = synthetic(n=8, seed=1, size=12)
    with torch.no_grad():
        y = model(d.x).argmax(1)
    return model, ImageData(d.x, y, "synthetic", d.sha256 + "-selflabelled", "synthetic")


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    x = torch.rand(3, 8, 8)
    return model, x


def exact_min_perturbation(model, x, q):
    """min_j (z_c - z_j) / ||w_c - w_j||_q: the exact distance to the nearest boundary of a linear model."""
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    z = w @ x.double().flatten() + b
    c = int(z.argmax())
    return min(((z[c] - z[j]) / (w[c] - w[j]).norm(p=q)).item() for j in range(10) if j != c)


@pytest.mark.parametrize("norm,q", [("l2", 2), ("linf", 1)])
@pytest.mark.parametrize("impl", ["art", "fast"])
@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy's skew of identical samples
def test_linear_model_known_answer(linear, norm, q, impl):
    # the margin's gradient is constant, so every sampled norm is ||w_c - w_j||_q and the Weibull
    # location is exactly that; a radius far outside the data keeps the cap out of the way
    model, x = linear
    p = CleverParams(norm=norm, radius=100.0, nb_batches=30, batch_size=8, pool_factor=2)
    with np_global_seed(0):
        score = clever_u_art(model, x, p) if impl == "art" else clever_u_fast(model, x, p)[0]
    assert score == pytest.approx(exact_min_perturbation(model, x, q), rel=1e-4)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_fast_path_matches_art_clever_u(cnn_data, norm):
    model, data = cnn_data
    p = CleverParams(norm=norm, radius={"l2": 2.0, "linf": 0.1}[norm], nb_batches=30, batch_size=5, pool_factor=3)
    for i in (0, 7):
        with np_global_seed(123 + i):
            ref = clever_u_art(model, data.x[i], p)
        with np_global_seed(123 + i):
            fast, per_target = clever_u_fast(model, data.x[i], p, chunk=4)  # chunk must not matter
        assert fast == pytest.approx(ref, rel=1e-5)
        assert fast == min(per_target.values()) and len(per_target) == 9
        assert 0 < fast <= p.radius


def test_seed_restores_global_numpy_state():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    with np_global_seed(99):
        np.random.rand(10)
    assert np.random.rand() == expected


def test_summarize_quartiles():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["n_scored"]) == (3.0, 2.0, 4.0, 5)
    assert summarize([])["median"] is None


def _suite(**over):
    d = {"name": "clever_t", "version": 1, "kind": "clever", "n": 6, "seed": 3, "batch_size": 16,
         "norms": ["l2", "linf"], "nb_batches": 20, "sample_batch_size": 4, "pool_factor": 2, **over}
    return parse_suite(d, json.dumps(d).encode())


def test_clever_suite_rows_and_resume(cnn_data, tmp_path, monkeypatch):
    from symbench.bench.data import ImageData

    model, full = cnn_data
    data = ImageData(full.x[:6], full.y[:6].clone(), "synthetic", full.sha256 + "-6", "synthetic")
    data.y[5] = (data.y[5] + 1) % 10       # one misclassified example: skipped, as in the paper
    suite = _suite()
    rows = run_clever(model, suite, data, model_name="tiny", store_root=str(tmp_path), progress=False)
    assert [r["threat"] for r in rows] == ["l2", "linf"]
    for r in rows:
        validate_row(r)
        assert r["robust_acc"] is None and r["clever_note"] == CLEVER_NOTE and r["variant"] == "clever_u"
        c = r["clever"]
        assert c["params"] == {"norm": r["threat"], "radius": r["eps"], "nb_batches": 20, "batch_size": 4,
                               "pool_factor": 2, "c_init": 1.0}
        assert c["n_scored"] == 5 and c["q1"] <= c["median"] <= c["q3"]
    store = Store(tmp_path, "tiny", rows[0]["store_key"])
    recs = [store.get("clever_l2", i) for i in range(6)]
    assert recs[5]["score"] is None and recs[5]["skipped"] == "misclassified"
    assert np.median([r["score"] for r in recs[:5]]) == pytest.approx(rows[0]["clever"]["median"])

    # a rerun reads every score from the store: no CLEVER computation at all
    monkeypatch.setattr("symbench.bench.kinds.clever.clever_u_fast", lambda *a, **k: pytest.fail("recomputed a stored score"))
    again = run_clever(model, suite, data, model_name="tiny", store_root=str(tmp_path), progress=False)
    assert [r["clever"]["median"] for r in again] == [r["clever"]["median"] for r in rows]


def test_clever_suite_art_implementation_same_scores(cnn_data, tmp_path):
    from symbench.bench.data import ImageData

    model, full = cnn_data
    data = ImageData(full.x[:2], full.y[:2], "synthetic", full.sha256 + "-2", "synthetic")
    fast = run_clever(model, _suite(n=2, norms=["linf"]), data, model_name="t", store_root=str(tmp_path),
                      progress=False)
    art = run_clever(model, _suite(n=2, norms=["linf"], implementation="art"), data, model_name="t",
                     store_root=str(tmp_path), progress=False)
    assert art[0]["clever"]["median"] == pytest.approx(fast[0]["clever"]["median"], rel=1e-5)
    assert art[0]["clever"]["implementation"] == "art" and art[0]["store_key"] != fast[0]["store_key"]
