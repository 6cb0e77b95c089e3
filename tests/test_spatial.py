"""Spatial robustness (issue 24): the transform against known answers, the grid, ART's SpatialTransformation
cross-check, the P4 quarter-turn property, and the spatial / rotation_curve / spatial_linf suite kinds."""
from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import torch
from torch import nn

from symbench.bench.attacks.art_spatial import ARTSpatial
from symbench.bench.attacks.spatial import (SpatialGrid, evaluate_transforms, pack_bits, random_transforms,
                                            rotate_translate, rotation_transforms, unpack_bits)
from symbench.bench.data import ImageData
from symbench.bench.kinds.spatial import (finer_status, identity_check, run_rotation_curve, run_spatial,
                                          run_spatial_linf)
from symbench.bench.run.compare import row_outcomes
from symbench.bench.run.outcomes import from_store
from symbench.bench.run.records import append_rows, check_row, read_rows
from symbench.bench.suites import list_suites, load_suite, parse_suite


def _suite(text: str):
    return parse_suite(tomllib.loads(text), text.encode())


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.rand(4, 3, 32, 32)


# ---------------------------------------------------------------------------------------------------------------
# The transform: known answers
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [16, 32])
def test_identity_is_exact(size):
    x = torch.rand(3, 3, size, size)
    assert torch.equal(rotate_translate(x, 0.0, 0.0, 0.0), x)


@pytest.mark.parametrize("angle,k", [(90, 1), (180, 2), (270, 3), (-90, 3), (-180, 2), (450, 1)])
def test_quarter_turns_are_rot90_exactly(images, angle, k):
    # counter-clockwise as displayed = torch.rot90 over (H, W); exact, not just close
    assert torch.equal(rotate_translate(images, angle), torch.rot90(images, k, (-2, -1)))


def test_rotation_direction_is_counter_clockwise_as_displayed():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1.0                      # a dot at the top centre
    out = rotate_translate(x, 90.0)
    assert out[0, 0, 2, 0] == 1.0 and out.sum() == 1.0   # moves to the left centre


@pytest.mark.parametrize("tx,ty", [(2, 0), (0, -3), (-1, 2), (3, 3)])
def test_integer_translation_is_shift_with_zero_fill(images, tx, ty):
    ref = torch.zeros_like(images)
    h, w = images.shape[-2:]
    ref[..., max(ty, 0):h + min(ty, 0), max(tx, 0):w + min(tx, 0)] = \
        images[..., max(-ty, 0):h + min(-ty, 0), max(-tx, 0):w + min(-tx, 0)]
    assert torch.equal(rotate_translate(images, 0.0, tx, ty), ref)


@pytest.mark.parametrize("angle", [23.0, -7.0, 30.0, 1.0])
def test_rotation_equals_scipy_bilinear_with_zero_padding(images, angle):
    from scipy.ndimage import rotate

    ref = rotate(images.double().numpy(), angle, axes=(2, 3), reshape=False, order=1, mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(rotate_translate(images, angle).numpy(), ref, atol=1e-5, rtol=0)


def test_rotate_then_translate_equals_engstroms_padded_canvas(images):
    # MadryLab/adversarial_spatial: pad 16 px of zeros, rotate, translate, crop; on whole-pixel
    # translations its two interpolations equal our single one (rotation first, then the shift)
    from scipy.ndimage import rotate, shift

    a, tx, ty = 17.0, 2, -3
    canvas = np.pad(images.double().numpy(), ((0, 0), (0, 0), (16, 16), (16, 16)))
    ref = shift(rotate(canvas, a, axes=(2, 3), reshape=False, order=1, mode="grid-constant"), [0, 0, ty, tx],
                order=1, mode="grid-constant")[..., 16:48, 16:48]
    np.testing.assert_allclose(rotate_translate(images, a, tx, ty).numpy(), ref, atol=1e-5, rtol=0)
    # and the order matters: translating first is a different image
    assert (rotate_translate(rotate_translate(images, 0, tx, ty), a) - torch.from_numpy(ref).float()).abs().max() > 0.1


def test_per_image_parameters_equal_one_at_a_time(images):
    a, tx, ty = [5.0, -12.5, 90.0, 0.0], [0.0, 1.5, -3.0, 2.0], [1.0, 0.0, 0.5, -2.0]
    batched = rotate_translate(images, a, tx, ty)
    for i in range(len(images)):
        assert torch.equal(batched[i:i + 1], rotate_translate(images[i:i + 1], a[i], tx[i], ty[i]))


def test_engstrom_grid():
    g = SpatialGrid()
    tr = g.transforms()
    assert g.size == len(tr) == 775
    assert g.rotations.tolist() == list(range(-30, 31, 2))
    assert g.translations.tolist() == [-3.0, -1.5, 0.0, 1.5, 3.0]
    assert tr[g.identity_index()].tolist() == [0.0, 0.0, 0.0]
    assert len({tuple(t) for t in tr.tolist()}) == 775
    fine = g.finer(2)
    assert fine.size == 61 * 25 and set(g.rotations.tolist()) <= set(fine.rotations.tolist())
    with pytest.raises(ValueError, match="odd"):
        SpatialGrid(n_rotations=30)


def test_rotation_transforms_and_random_draws():
    r = rotation_transforms(180.0, 1.0)
    assert len(r) == 361 and {0.0, 90.0, -90.0, 180.0, -180.0} <= set(r[:, 0].tolist())
    g = SpatialGrid()
    a, b = random_transforms(10, g, seed=3), random_transforms(10, g, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, random_transforms(10, g, seed=4))
    assert (a[:, 0].abs() <= 30).all() and (a[:, 1:].abs() <= 3).all()


def test_pack_bits_round_trip():
    m = torch.rand(7, 775) > 0.3
    assert torch.equal(unpack_bits(pack_bits(m), 775), m)
    with pytest.raises(ValueError):
        unpack_bits(pack_bits(m)[:1], 784)                # 98 bytes, not the 97 of 775 bits


# ---------------------------------------------------------------------------------------------------------------
# ART's SpatialTransformation against our batched grid
# ---------------------------------------------------------------------------------------------------------------

def test_art_spatial_transformation_agrees_per_example(tiny_model, tiny_data):
    """ART searches one image at a time with its own transform (scipy shift then rotate, cubic spline) on its
    whole-pixel grid; our batched search with ART's transform on that grid must agree on every example."""
    x, y = tiny_data.x[:6], tiny_data.y[:6]
    atk = ARTSpatial(max_rotation=30.0, n_rotations=3, max_translation_px=3.0, n_translations=5)
    assert atk.percent(16) == 18.75                       # 3 px of a 16 px side
    grid = atk.grid_transforms(16)
    assert sorted(set(grid[:, 1].tolist())) == [-3.0, -2.0, 0.0, 2.0, 3.0]   # ART rounds -1.5/1.5 to whole pixels
    _, art_robust, chosen = atk(tiny_model, x, y)
    out = evaluate_transforms(tiny_model, x, y, grid, convention="art")
    with torch.no_grad():
        clean = tiny_model(x).argmax(1) == y
    ours = clean & out.correct.all(1)
    assert ours.tolist() == art_robust.tolist()
    assert 0 < int(ours.sum()) < len(ours)                # both outcomes occur: agreement is not trivial
    rows = {tuple(t): i for i, t in enumerate(grid.tolist())}
    for i, c in enumerate(chosen):                        # ART's fooling transform fools ours too
        if c is not None:
            rows_shift, cols_shift, angle = c
            assert not out.correct[i, rows[(angle, float(cols_shift), float(rows_shift))]]


# ---------------------------------------------------------------------------------------------------------------
# The P4 property
# ---------------------------------------------------------------------------------------------------------------

def test_p4_model_keeps_every_prediction_under_a_quarter_turn(images):
    from symbench.models import create_model

    model = create_model("equivariant4").eval()
    x = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        logits, turned = model(x), model(rotate_translate(x, 90.0))
    assert torch.equal(logits.argmax(1), turned.argmax(1))
    torch.testing.assert_close(turned, logits, atol=1e-4, rtol=1e-4)
    plain = create_model("baseline_cnn4").eval()
    with torch.no_grad():
        assert (plain(rotate_translate(x, 90.0)) - plain(x)).abs().max() > 1e-3   # the test can fail


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------

def test_identity_check_fails_on_any_changed_prediction():
    assert identity_check(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]))["status"] == "pass"
    assert identity_check(torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3]))["status"] == "fail"


@pytest.mark.parametrize("broken,subset,acc,status", [(0, 50, 0.6, "pass"), (1, 100, 0.6, "pass"),
                                                      (2, 100, 0.6, "warn"), (4, 100, 0.6, "fail"),
                                                      (3, 10, 0.05, "warn"), (0, 0, 0.0, "skip")])
def test_finer_status_scales_the_broken_share_to_the_row(broken, subset, acc, status):
    # 4/100 of a 60% row is 2.4 points (> 2: fail); 2/100 -> 1.2 (warn); 3/10 of 5% -> 1.5 (warn)
    assert finer_status(broken, subset, acc, "test")["status"] == status


# ---------------------------------------------------------------------------------------------------------------
# The suite kinds
# ---------------------------------------------------------------------------------------------------------------

SMALL_GRID = """
name = "spatial_small"
version = 1
kind = "spatial"
n = 24
seed = 0
batch_size = 10
max_rotation = 30.0
n_rotations = 5
max_translation = 3.0
n_translations = 3
random_tries = 3
finer_check_n = 8
"""


def _brute_force(model, x, y, transforms):
    """Per example, per transform, one image at a time: the answer the batched search must give."""
    out = []
    with torch.no_grad():
        for i in range(len(x)):
            ok = model(x[i:i + 1]).argmax(1).item() == y[i].item()
            for a, tx, ty in transforms.tolist():
                ok = ok and model(rotate_translate(x[i:i + 1], a, tx, ty)).argmax(1).item() == y[i].item()
            out.append(ok)
    return out


def test_spatial_kind_row_equals_brute_force_and_resumes(tiny_model, tiny_data, tmp_path):
    suite = _suite(SMALL_GRID)
    data = ImageData(tiny_data.x[:24], tiny_data.y[:24], "synthetic", "tiny24", "synthetic")
    [row] = run_spatial(tiny_model, suite, data, model_name="tiny", store_root=tmp_path, progress=False)
    append_rows(tmp_path / "rows.jsonl", [row])          # validates against leaderboard/schema.json
    check_row(row)
    sp = row["spatial"]
    assert sp["grid_size"] == 45 and row["threat"] == "spatial" and row["eps"] == 30.0
    grid_robust = _brute_force(tiny_model, data.x, data.y, SpatialGrid(30.0, 5, 3.0, 3).transforms())
    assert sp["grid_acc"] == pytest.approx(np.mean(grid_robust))
    assert row["robust_acc"] <= sp["grid_acc"] <= row["clean_acc"] and row["robust_acc"] <= sp["random_acc"]
    assert row["checks"]["identity_is_clean"]["status"] == "pass" and row["verdict"] in ("trusted", "suspect")
    assert row["n_forward"] == 24 * (45 + 3)             # grid + random tries (the clean pass is not an attack)
    # the masks are where paired comparisons read them
    robust = row_outcomes(row, tmp_path, "robust")
    assert np.mean(robust) == pytest.approx(row["robust_acc"]) and len(robust) == 24
    assert from_store(row, tmp_path).disagreements(row) == []   # what publishing checks: numbers = masks' means
    # kill mid-run = a batch record missing: the rerun recomputes only it and gives the same row
    store_dir = tmp_path / "tiny" / row["store_key"]
    (store_dir / "spatial_30.00000000" / "b00001.json").unlink()
    [again] = run_spatial(tiny_model, suite, data, model_name="tiny", store_root=tmp_path, progress=False)
    assert (store_dir / "spatial_30.00000000" / "b00001.json").is_file()
    for k in ("clean_acc", "robust_acc", "attacks", "spatial", "checks", "store_key"):
        assert again[k] == row[k], k


class Oracle(nn.Module):
    """Class 0 for every image except a list of forbidden ones (class 1): a known answer for the searches."""

    def __init__(self, forbidden: torch.Tensor):
        super().__init__()
        self.register_buffer("forbidden", forbidden)

    def forward(self, x):
        hit = ((x[:, None] - self.forbidden[None]).abs().flatten(2).amax(2) < 1e-6).any(1)   # (N,)
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = (~hit).float()
        logits[:, 1] = hit.float()
        return logits


def _oracle_data(n=12):
    torch.manual_seed(1)
    x = torch.rand(n, 3, 16, 16)
    return ImageData(x, torch.zeros(n, dtype=torch.long), "synthetic", f"oracle{n}", "synthetic")


def test_finer_grid_check_fails_a_row_the_grid_over_reports(tmp_path):
    # broken only at 7.5°, between the grid's 15° steps: the grid says robust, the 2x finer search does not
    data = _oracle_data()
    text = SMALL_GRID.replace("n_translations = 3", "n_translations = 1").replace("n = 24", "n = 12") \
                     .replace("finer_check_n = 8", "finer_check_n = 12")
    suite = _suite(text)
    model = Oracle(rotate_translate(data.x[:4], 7.5)).eval()
    [row] = run_spatial(model, suite, data, model_name="oracle", store_root=tmp_path, progress=False)
    assert row["spatial"]["grid_acc"] == 1.0
    fg = row["checks"]["finer_grid"]
    assert fg["status"] == "fail" and "broke 4 of 12" in fg["detail"] and row["verdict"] == "suspect"
    clean = Oracle(rotate_translate(data.x[:4], 15.0)).eval()     # broken on the grid itself: no extra
    [row] = run_spatial(clean, suite, data, model_name="oracle2", store_root=tmp_path, progress=False)
    assert row["spatial"]["grid_acc"] == pytest.approx(8 / 12) and row["checks"]["finer_grid"]["status"] == "pass"


def test_finer_grid_subset_grows_while_undecided_and_searches_each_example_once(tmp_path):
    # 2 of 40 broken between grid points (5 points): 4 examples cannot tell, so the subset doubles to all 40
    data = _oracle_data(40)
    text = SMALL_GRID.replace("n_translations = 3", "n_translations = 1").replace("n = 24", "n = 40") \
                     .replace("finer_check_n = 8", "finer_check_n = 4\nfiner_check_max_n = 64")
    from symbench.bench.checks.spot import sample_survivors, seed_of

    first = set(sample_survivors(torch.ones(40, dtype=torch.bool), 4, seed_of(0, "finer_grid")).tolist())
    bad = [i for i in range(40) if i not in first][:2]                    # outside the first stage's 4
    model = Oracle(rotate_translate(data.x[bad], -7.5)).eval()
    [row] = run_spatial(model, _suite(text), data, model_name="oracle", store_root=tmp_path, progress=False)
    fg = row["checks"]["finer_grid"]
    assert fg["status"] == "fail" and "broke 2 of 40" in fg["detail"] and "every survivor searched" in fg["detail"]
    stages = sorted((tmp_path / "oracle" / row["store_key"] / "finer_grid").glob("b*.json"))
    searched = [i for f in stages for i in json.loads(f.read_text())["idx"]]
    assert len(stages) > 1 and sorted(searched) == list(range(40))      # nested stages, each example once


ROTATION = """
name = "rotation_small"
version = 1
kind = "rotation_curve"
n = 12
seed = 0
batch_size = 5
thetas = [0, 3, 5, 90, 180]
step = 1.0
finer_check_n = 12
"""


def test_rotation_curve_rows_known_answer(tmp_path):
    data = _oracle_data()
    # example 0 broken at 4°, example 1 at -90°, example 2 at 3.5° (only the finer check sees it)
    forbidden = torch.cat([rotate_translate(data.x[0:1], 4.0), rotate_translate(data.x[1:2], -90.0),
                           rotate_translate(data.x[2:3], 3.5)])
    rows = run_rotation_curve(Oracle(forbidden).eval(), _suite(ROTATION), data, model_name="oracle",
                              store_root=tmp_path, progress=False)
    append_rows(tmp_path / "rows.jsonl", rows)
    by = {r["eps"]: r for r in rows}
    assert sorted(by) == [0.0, 3.0, 5.0, 90.0, 180.0] and all(r["threat"] == "rotation" for r in rows)
    assert by[0.0]["robust_acc"] == by[0.0]["clean_acc"] == 1.0
    assert by[3.0]["robust_acc"] == 1.0 and by[5.0]["robust_acc"] == pytest.approx(11 / 12)
    assert by[90.0]["robust_acc"] == by[180.0]["robust_acc"] == pytest.approx(10 / 12)
    assert by[90.0]["rotation"]["acc_at"] == {"-90": pytest.approx(11 / 12), "+90": 1.0}
    assert by[180.0]["rotation"]["n_angles"] == 361
    # the finer check finds 3.5° within ±5 (a 12-example subset: 1/11 of the 11/12 row = 8.3 points) but not ±3
    assert by[5.0]["checks"]["finer_grid"]["status"] == "fail" and by[3.0]["checks"]["finer_grid"]["status"] == "pass"
    assert by[0.0]["checks"]["finer_grid"]["status"] == "pass"
    assert row_outcomes(by[5.0], tmp_path, "robust") == [False] + [True] * 11
    assert all(from_store(r, tmp_path).disagreements(r) == [] for r in rows)


def test_rotation_curve_theta_zero_is_clean_accuracy(tiny_model, tiny_data, tmp_path):
    data = ImageData(tiny_data.x[:30], tiny_data.y[:30], "synthetic", "tiny30", "synthetic")
    suite = _suite(ROTATION.replace("n = 12", "n = 30").replace("batch_size = 5", "batch_size = 16"))
    rows = run_rotation_curve(tiny_model, suite, data, model_name="tiny", store_root=tmp_path, progress=False)
    accs = [r["robust_acc"] for r in sorted(rows, key=lambda r: r["eps"])]
    assert accs[0] == rows[0]["clean_acc"] and accs == sorted(accs, reverse=True)
    assert row_outcomes(rows[0], tmp_path, "robust") == row_outcomes(rows[0], tmp_path, "clean")


def test_spatial_linf_is_grid_then_attack_on_top_k(tiny_model, tiny_data, tmp_path):
    text = """
name = "spatial_linf_small"
version = 1
kind = "spatial_linf"
n = 12
seed = 0
batch_size = 6
max_rotation = 10.0
n_rotations = 3
max_translation = 1.0
n_translations = 3
k = 2
chunk = 4
[[threats]]
norm = "linf"
eps = [0.02]
[[attacks]]
name = "apgd_ce"
iters = 5
"""
    data = ImageData(tiny_data.x[:12], tiny_data.y[:12], "synthetic", "tiny12", "synthetic")
    [row] = run_spatial_linf(tiny_model, _suite(text), data, model_name="tiny", store_root=tmp_path, progress=False)
    append_rows(tmp_path / "rows.jsonl", [row])
    check_row(row)
    b = row["spatial_linf"]
    assert b["k"] == 2 and "upper bound" in b["bound"] and row["threat"] == "spatial_linf"
    assert row["robust_acc"] <= b["grid_acc"] <= row["clean_acc"]
    assert row["n_backward"] > 0 and row["attacks"][1]["label"] == "apgd_ce[iters=5][top2]"
    assert from_store(row, tmp_path).disagreements(row) == []


def test_bad_suites_and_randomized_models_are_refused_before_compute(tiny_model, tiny_data, tmp_path):
    data = ImageData(tiny_data.x[:4], tiny_data.y[:4], "synthetic", "tiny4", "synthetic")
    with pytest.raises(ValueError, match="unknown option"):
        run_spatial(tiny_model, _suite(SMALL_GRID + "n_rotation = 7\n"), data, model_name="t", store_root=tmp_path)
    with pytest.raises(ValueError, match="odd"):
        run_spatial(tiny_model, _suite(SMALL_GRID.replace("n_rotations = 5", "n_rotations = 4")), data,
                    model_name="t", store_root=tmp_path)

    class Noisy(nn.Module):
        def forward(self, x):
            return tiny_model(x) + torch.randn(len(x), 10)

    with pytest.raises(ValueError, match="randomized"):
        run_spatial(Noisy().eval(), _suite(SMALL_GRID), data, model_name="t", store_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_shipped_suites_load_and_state_the_grid():
    assert {"spatial", "rotation_curve", "spatial_linf"} <= set(list_suites())
    sp = load_suite("spatial")
    assert sp.kind == "spatial" and sp.option("n_rotations") == 31 and sp.option("n_translations") == 5
    assert sp.option("interpolation") == "bilinear" and sp.option("padding") == "zeros"
    assert sp.option("random_tries") == 10
    rc = load_suite("rotation_curve")
    assert list(rc.option("thetas")) == [0, 5, 10, 15, 30, 45, 90, 180] and rc.option("step") == 1.0
    sl = load_suite("spatial_linf")
    assert sl.option("k") == 10 and sl.attacks[0].name == "apgd_ce" and sl.threats[0].eps[0] == pytest.approx(8 / 255)


def test_bench_dispatches_the_spatial_kind(tiny_model, tiny_data, tmp_path):
    from symbench.bench.run.evaluate import bench

    path = tmp_path / "small.toml"
    path.write_text(SMALL_GRID.replace("n = 24", "n = 10"))
    data = ImageData(tiny_data.x[:10], tiny_data.y[:10], "synthetic", "tiny10", "synthetic")
    rows = bench("tiny", str(path), model=tiny_model, data=data, store=tmp_path / "store", out=tmp_path / "rows.jsonl",
                 progress=False)
    assert [r["threat"] for r in rows] == ["spatial"]
    assert read_rows(tmp_path / "rows.jsonl")[0]["spatial"]["grid_size"] == 45
    assert json.loads(json.dumps(rows[0]))["verdict"] in ("trusted", "suspect")
