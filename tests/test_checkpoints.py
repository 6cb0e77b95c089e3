import pytest
import torch

from symbench.models import CheckpointError, create_model
from symbench.models.checkpoints import save_weights


@pytest.mark.parametrize("name", ["baseline_cnn4", "equivariant4", "equivariant4_c8", "cascaded4"])
def test_roundtrip_with_matching_sha256(tmp_path, name):
    model = create_model(name, base=8)  # equivariant4's e2cnn layers share tensors: must still save
    sha = save_weights(model, tmp_path / "m.safetensors")
    loaded = create_model(name, base=8, checkpoint=tmp_path / "m.safetensors", sha256=sha)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.card.sha256 == sha


def test_saved_checkpoint_is_readable_by_others_under_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        save_weights(create_model("baseline_cnn4", base=8), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_wrong_sha256_is_refused(tmp_path):
    model = create_model("baseline_cnn4", base=8)
    save_weights(model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        create_model("baseline_cnn4", base=8, checkpoint=tmp_path / "m.safetensors", sha256="0" * 64)


@pytest.mark.parametrize("fname", ["m.pt", "m.safetensors"])
def test_pickles_are_refused_whatever_their_name(tmp_path, fname):
    model = create_model("baseline_cnn4", base=8)
    torch.save(model.state_dict(), tmp_path / fname)
    with pytest.raises(CheckpointError, match="only .safetensors"):
        create_model("baseline_cnn4", base=8, checkpoint=tmp_path / fname)


def test_weights_of_another_architecture_are_refused(tmp_path):
    sha = save_weights(create_model("baseline_cnn4", base=8), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="does not fit"):
        create_model("equivariant4", base=8, checkpoint=tmp_path / "m.safetensors", sha256=sha)


def test_pretrained_without_checkpoint_says_how_to_train(tmp_path, monkeypatch):
    # An empty checkpoint folder: every shipped model is trained now, so name none of them as "untrained".
    import symbench.models.registry as registry

    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="symbench train baseline_cnn4"):
        create_model("baseline_cnn4", pretrained=True)
