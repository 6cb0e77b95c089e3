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
