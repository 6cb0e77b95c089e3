import json

import torch

from symbench.bench.data import synthetic
from symbench.bench.train import train
from symbench.models import create_model


def test_training_lowers_the_loss_and_writes_a_verified_checkpoint(tmp_path):
    data = synthetic(n=64, seed=0)
    card = train("baseline_cnn4", train_data=data, test_data=data, out_dir=tmp_path, state_root=tmp_path / "state",
                 model_kwargs={"base": 4}, epochs=3, batch_size=16, lr=0.05, threads=1, progress=False)
    losses = [h["loss"] for h in card["history"]]
    assert losses[-1] < losses[0]
    on_disk = json.loads((tmp_path / "baseline_cnn4.json").read_text())
    assert on_disk["sha256"] == card["sha256"] and len(card["sha256"]) == 64
    model = create_model("baseline_cnn4", base=4, checkpoint=tmp_path / "baseline_cnn4.safetensors",
                         sha256=card["sha256"])
    acc = (model(data.x).argmax(1) == data.y).float().mean().item()
    assert abs(acc - card["clean_acc"]) < 1e-6


def test_resumed_training_equals_uninterrupted(tmp_path):
    data = synthetic(n=48, seed=1)
    kw = dict(train_data=data, test_data=data, model_kwargs={"base": 4}, batch_size=16, lr=0.05, threads=1,
              progress=False)
    full = train("baseline_cnn4", out_dir=tmp_path / "a", state_root=tmp_path / "sa", epochs=2, **kw)
    # "killed" after epoch 1: a run with the same recipe but stopped early leaves its state behind
    import symbench.bench.train as t

    calls = {"n": 0}
    real_epoch = t.train_epoch

    def dying_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*a, **k)

    t.train_epoch = dying_epoch
    try:
        try:
            train("baseline_cnn4", out_dir=tmp_path / "b", state_root=tmp_path / "sb", epochs=2, **kw)
        except KeyboardInterrupt:
            pass
    finally:
        t.train_epoch = real_epoch
    assert not (tmp_path / "b" / "baseline_cnn4.safetensors").exists()
    resumed = train("baseline_cnn4", out_dir=tmp_path / "b", state_root=tmp_path / "sb", epochs=2, **kw)
    assert resumed["sha256"] == full["sha256"]


def test_adversarial_training_records_pgd_accuracy_and_keeps_the_best_epoch(tmp_path):
    data = synthetic(n=64, seed=2)
    card = train("baseline_cnn4", train_data=data, test_data=data, out_dir=tmp_path, state_root=tmp_path / "s",
                 model_kwargs={"base": 4}, epochs=2, batch_size=16, lr=0.05, threads=1, progress=False,
                 adv="fgsm_rs", adv_eps=8 / 255)
    pgd = [h["pgd10_acc_holdout"] for h in card["history"]]
    assert len(pgd) == 2 and all(0 <= p <= 1 for p in pgd)
    assert card["epoch_kept"] == 1 + pgd.index(max(pgd)) or pgd[0] == pgd[1]


def test_state_of_another_recipe_is_not_a_warm_start(tmp_path):
    data = synthetic(n=48, seed=3)
    kw = dict(train_data=data, test_data=data, model_kwargs={"base": 4}, batch_size=16, lr=0.05, threads=1,
              progress=False, state_root=tmp_path / "s")
    train("baseline_cnn4", out_dir=tmp_path / "a", epochs=1, **kw)       # leaves a finished 1-epoch state
    fresh = train("baseline_cnn4", out_dir=tmp_path / "b", epochs=2, state_root=tmp_path / "other",
                  **{k: v for k, v in kw.items() if k != "state_root"})
    after_other = train("baseline_cnn4", out_dir=tmp_path / "c", epochs=2, **kw)  # same seed, other recipe
    assert after_other["sha256"] == fresh["sha256"]


# --- issue 24: the rotaug recipe (crop+flip, then a random rotation within ±30° and translation within ±3 px)

def test_crop_flip_recipe_is_unchanged_by_the_augmentation_dispatch():
    from symbench.bench.train import augment, augment_batch

    x = torch.rand(8, 3, 32, 32)
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(augment_batch(x, "crop+flip", a), augment(x, b))
    assert torch.equal(a.get_state(), b.get_state())  # the same draws: the existing recipes train as before
    assert torch.equal(augment_batch(x, "none", a), x)


def test_rotate_translate_known_answers():
    from symbench.bench.train import rotate_translate

    x = torch.rand(2, 3, 32, 32)
    shifted = rotate_translate(x, torch.zeros(2), torch.tensor([[2, -1], [2, -1]]))  # 2 px right, 1 px up
    expected = torch.zeros_like(x)
    expected[..., :31, 2:] = x[..., 1:, :30]  # zero fill where nothing moved in
    assert torch.equal(shifted, expected)
    # torchvision's affine angle is clockwise as displayed: 90° is torch.rot90 with k=-1 (bilinear, exact grid)
    turned = rotate_translate(x, torch.full((2,), 90.0), torch.zeros(2, 2, dtype=torch.long))
    torch.testing.assert_close(turned, torch.rot90(x, -1, (2, 3)), atol=1e-5, rtol=0)
    assert not torch.allclose(turned, x, atol=1e-2)


def test_rotaug_stays_in_unit_range_and_is_seeded():
    from symbench.bench.train import augment_batch

    x = torch.rand(16, 3, 32, 32)
    x[:, :, :4] = 1.0  # saturated rows: bilinear interpolation with the zero fill must stay within [0,1]
    out = augment_batch(x, "crop+flip+rot30+trans3", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    again = augment_batch(x, "crop+flip+rot30+trans3", torch.Generator().manual_seed(0))
    other = augment_batch(x, "crop+flip+rot30+trans3", torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)
    crop_flip_only = augment_batch(x, "crop+flip", torch.Generator().manual_seed(0))
    assert (out - crop_flip_only).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every image was also rotated/shifted


def test_rotaug_draws_randomaffines_distribution_per_image(monkeypatch):
    import symbench.bench.train as t

    seen = {}

    def record(x, angles, shifts):
        seen["angles"], seen["shifts"] = angles, shifts
        return x

    monkeypatch.setattr(t, "rotate_translate", record)
    t.random_rotate_translate(torch.zeros(2000, 1, 4, 4), torch.Generator().manual_seed(0), 30.0, 3)
    angles, shifts = seen["angles"], seen["shifts"]
    assert angles.abs().max() <= 30 and angles.min() < -29 and angles.max() > 29
    assert abs(angles.mean()) < 1.5  # uniform on ±30: sd of the mean of 2000 is 0.4
    assert shifts.dtype == torch.int64 and set(shifts.unique().tolist()) == set(range(-3, 4))
    assert len(set(angles[:50].tolist())) == 50  # one transform per image, not one per batch


def test_unknown_augmentation_fails_before_loading_data(tmp_path):
    import pytest

    from symbench.bench.train import parse_augment

    assert parse_augment("crop+flip+rot30+trans3") == (True, 30.0, 3)
    with pytest.raises(ValueError, match="unknown augmentation 'rot30'"):
        train("baseline_cnn4", data_dir=tmp_path / "nowhere", augment="rot30", progress=False)


def test_rotaug_models_train_the_baseline_recipe_plus_rotations(tmp_path):
    from symbench.models import get_card

    for rotaug, base in [("baseline_cnn4_rotaug", "baseline_cnn4"), ("baseline_cnn10_rotaug", "baseline_cnn10")]:
        r, b = get_card(rotaug).recipe, get_card(base).recipe
        assert r.augment == "crop+flip+rot30+trans3" and b.augment == "crop+flip"
        assert (r.epochs, r.lr, r.batch_size, r.weight_decay, r.seed, r.adv) == \
            (b.epochs, b.lr, b.batch_size, b.weight_decay, b.seed, b.adv)
    data = synthetic(n=32, seed=4)
    kw = dict(train_data=data, test_data=data, model_kwargs={"base": 4}, epochs=1, batch_size=16, threads=1,
              progress=False)
    one = train("baseline_cnn4_rotaug", out_dir=tmp_path / "a", state_root=tmp_path / "sa", **kw)
    two = train("baseline_cnn4_rotaug", out_dir=tmp_path / "b", state_root=tmp_path / "sb", **kw)
    plain = train("baseline_cnn4", out_dir=tmp_path / "c", state_root=tmp_path / "sc", **kw)
    assert one["recipe"]["augment"] == "crop+flip+rot30+trans3"
    assert one["sha256"] == two["sha256"] != plain["sha256"]  # seeded, and the augmentation is really used
