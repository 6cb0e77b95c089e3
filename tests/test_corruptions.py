"""CIFAR-10-C: generated corruptions (identity, determinism, range, cache), the official loader, and the
``corruptions`` / ``corrupted_adv`` suite kinds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from symbench.bench.kinds import corruptions as C
from symbench.bench.data import from_uint8, synthetic
from symbench.bench.run.records import validate_row
from symbench.bench.suites import parse_suite
from conftest import SHARED_DATA, needs_shared_data



@pytest.fixture(scope="module")
def images():
    return C.to_uint8(synthetic(n=4, seed=2, size=32))


@pytest.fixture(scope="module")
def small():
    """A seeded untrained conv net and 12 synthetic 16x16 images labelled with its predictions."""
    from symbench.bench.data import ImageData

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 10)).eval()
    d = synthetic(n=12, seed=3, size=16)
    with torch.no_grad():
        y = model(d.x).argmax(1)
    return model, ImageData(d.x, y, "synthetic", d.sha256 + "-selflabelled", "synthetic")


@pytest.mark.parametrize("name", C.ALL)
def test_severity_zero_is_identity_and_generation_is_deterministic(images, name):
    assert np.array_equal(C.corrupt_images(images, name, 0, seed=1), images)
    a = C.corrupt_images(images, name, 3, seed=1)
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, C.corrupt_images(images, name, 3, seed=1))
    assert not np.array_equal(a, images)
    # image i depends on its index only, not on which other images are in the batch
    assert np.array_equal(C.corrupt_images(images[2:], name, 3, seed=1, index=[2, 3]), a[2:])


def test_seed_changes_random_corruptions(images):
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "fog", "frost", "spatter"):
        assert not np.array_equal(C.corrupt_images(images, name, 5, seed=1), C.corrupt_images(images, name, 5, seed=2))


def test_generated_data_cached_in_unit_range_and_labelled(tmp_path):
    data = synthetic(n=6, seed=0, size=16)
    a = C.generated(data, "snow", 4, seed=7, cache_dir=tmp_path)
    assert a.source.startswith("generated:imagecorruptions-") and "seed=7" in a.source and "snow/4" in a.source
    assert 0 <= a.x.min() and a.x.max() <= 1 and a.x.dtype == torch.float32 and torch.equal(a.y, data.y)
    assert len(list(tmp_path.rglob("snow-4.npy"))) == 1
    b = C.generated(data, "snow", 4, seed=7, cache_dir=tmp_path)   # read back from the cache
    assert torch.equal(a.x, b.x) and a.sha256 == b.sha256
    assert C.generated(data, "snow", 4, seed=8, cache_dir=tmp_path).sha256 != a.sha256


def test_unknown_corruption_or_severity_fails(images):
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt_image(images[0], "rain", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt_image(images[0], "fog", 6, 0)


def _fake_official(root, n=4):
    """Official layout with n images per severity: pixel value = severity*10 + index."""
    d = root / "CIFAR-10-C"
    d.mkdir()
    x = np.zeros((5 * n, 32, 32, 3), np.uint8)
    for s in range(5):
        for i in range(n):
            x[s * n + i] = (s + 1) * 10 + i
    np.save(d / "fog.npy", x)
    np.save(d / "labels.npy", np.tile(np.arange(n) % 10, 5).astype(np.uint8))
    return d


def test_official_layout_loader(tmp_path):
    d = _fake_official(tmp_path)
    x, y = C.load_official(d, "fog", 3, indices=[1, 3])
    assert x.shape == (2, 32, 32, 3) and (x[:, 0, 0, 0] == [31, 33]).all() and y.tolist() == [1, 3]
    clean = from_uint8(np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]), f"npz:{tmp_path / 'cifar10'}", "test")
    assert C.find_official(clean) == d                       # found next to where the clean data came from
    cdata = C.corrupted(clean, "fog", 5, source="official", official_dir=d)
    assert cdata.source.startswith("CIFAR-10-C:") and torch.allclose(cdata.x[1, 0, 0, 0], torch.tensor(51 / 255))
    wrong = from_uint8(np.zeros((2, 32, 32, 3), np.uint8), np.array([5, 5]), "npz:x", "test")
    with pytest.raises(ValueError, match="labels"):
        C.corrupted(wrong, "fog", 1, source="official", official_dir=d)
    with pytest.raises(ValueError, match="generated"):   # official CIFAR-10-C never stands in for other data
        C.corrupted(synthetic(2), "fog", 1, source="official", official_dir=d)


def test_robustbench_loader_path(monkeypatch, tmp_path):
    """robustbench's loader cannot download here; check our side of the call with it stubbed."""
    try:
        C.import_robustbench()
        import robustbench.data as rbd
    except Exception as err:  # pragma: no cover - robustbench not installed
        pytest.skip(f"robustbench unavailable: {err}")
    calls = {}

    def fake(n_examples, severity, data_dir, shuffle, corruptions):
        calls.update(n=n_examples, severity=severity, data_dir=data_dir, corruptions=corruptions)
        return torch.full((n_examples, 3, 32, 32), 7 / 255), torch.arange(n_examples) % 10

    monkeypatch.setattr(rbd, "load_cifar10c", fake)
    x, y = C.load_robustbench(tmp_path, "fog", 2, 3)
    assert calls == {"n": 3, "severity": 2, "data_dir": str(tmp_path), "corruptions": ["fog"]}
    assert x.dtype == np.uint8 and (x == 7).all() and y.tolist() == [0, 1, 2]


def _suite(kind, **over):
    d = {"name": f"{kind}_t", "version": 1, "kind": kind, "n": 12, "seed": 0, "batch_size": 8,
         "corruptions": ["gaussian_noise", "contrast"], "severities": [1, 5], **over}
    return parse_suite(d, json.dumps(d).encode())


def test_corruptions_suite_rows(small, tmp_path):
    model, data = small
    suite = _suite("corruptions", cache_dir=str(tmp_path / "cache"))
    rows = C.run_corruptions(model, suite, data, model_name="small", store_root=str(tmp_path / "store"),
                             progress=False)
    variants = [r["variant"] for r in rows]
    assert variants == ["gaussian_noise/1", "gaussian_noise/5", "contrast/1", "contrast/5", "gaussian_noise/mean",
                        "contrast/mean", "mean/all"]   # no mean/common15: only 2 of the 15 were run
    for r in rows:
        validate_row(r)
        assert r["threat"] == "corruptions" and r["n"] == 12 and r["clean_acc"] == 1.0
        assert r["data_source"].startswith("generated:imagecorruptions")
        pairs = 1 if r["severity"] else 2 if r["corruption"] else 4  # one pair, a corruption's 2, all 4
        assert r["n_forward"] == 12 * pairs  # provenance: what the row cost
    secs = {r["variant"]: r["wall_seconds"] for r in rows}
    assert secs["mean/all"] == pytest.approx(sum(secs[v] for v in variants[:4]), abs=0.003)
    stored = [json.loads(f.read_text()) for f in (tmp_path / "store").rglob("b*.json")]
    assert sum("seconds" in rec for rec in stored) == 4 and all(rec["seconds"] > 0 for rec in stored if "seconds" in rec)
    per = {r["variant"]: r["robust_acc"] for r in rows}
    assert per["contrast/mean"] == pytest.approx((per["contrast/1"] + per["contrast/5"]) / 2)
    assert per["mean/all"] == pytest.approx(np.mean([per[v] for v in variants[:4]]))
    again = C.run_corruptions(model, suite, data, model_name="small", store_root=str(tmp_path / "store"),
                              progress=False)
    assert [r["robust_acc"] for r in again] == [r["robust_acc"] for r in rows]
    assert [r["n_forward"] for r in again] == [r["n_forward"] for r in rows]  # resumed rows keep their cost


def test_corrupted_adv_suite_rows(small, tmp_path):
    model, data = small
    suite = _suite("corrupted_adv", corruptions=["fog"], severities=[3], cache_dir=str(tmp_path / "cache"),
                   threats=[{"norm": "linf", "eps": [0.01, 0.04]}],
                   attacks=[{"name": "art_fgsm"}, {"name": "art_pgd", "steps": 3}])
    rows = C.run_corrupted_adv(model, suite, data, model_name="small", store_root=str(tmp_path / "store"),
                               progress=False)
    assert [(r["variant"], r["eps"]) for r in rows] == [("fog/3", 0.01), ("fog/3", 0.04), ("mean/3", 0.01),
                                                        ("mean/3", 0.04)]
    for r in rows:
        validate_row(r)
        assert r["data_source"].startswith("generated:imagecorruptions")
        fgsm, worst = r["attacks"][0]["acc_after"], r["attacks"][1]["acc_after"]
        assert r["robust_acc"] == worst <= fgsm <= r["clean_acc"]
    table = C.seed_table(rows)
    assert "fog/3" in table and "eps=0.04" in table


@needs_shared_data
def test_higher_severity_lowers_trained_model_accuracy():
    """On real CIFAR-10 with the trained cascaded4: mean accuracy over the 19 corruptions drops from
    severity 1 to 5."""
    from symbench.bench.data import load_cifar10
    from symbench.models import create_model
    from symbench.models.checkpoints import CheckpointError

    try:
        model = create_model("cascaded4", pretrained=True).eval()
    except CheckpointError:
        pytest.skip("cascaded4 has no trained checkpoint here")
    data = load_cifar10("test", SHARED_DATA, n=40)
    x8 = C.to_uint8(data)

    def acc(x):
        with torch.no_grad():
            return (model(from_uint8(x, data.y.numpy(), "t").x).argmax(1) == data.y).float().mean().item()

    mild = np.mean([acc(C.corrupt_images(x8, c, 1, seed=0)) for c in C.ALL])
    severe = np.mean([acc(C.corrupt_images(x8, c, 5, seed=0)) for c in C.ALL])
    assert severe < mild - 0.1, (mild, severe)   # measured: 0.87 at severity 1, 0.62 at 5
