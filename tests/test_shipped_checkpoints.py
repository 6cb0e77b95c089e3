"""Every shipped checkpoint loads through its card, verifies, and still has the card's accuracy."""
import pytest
import torch

from symbench.bench.data import load_cifar10
from symbench.models import create_model, get_card, list_models
from symbench.models.registry import checkpoint_path
from conftest import SHARED_DATA, needs_shared_data

SHIPPED = [n for n in list_models() if get_card(n).sha256 and checkpoint_path(get_card(n)).is_file()]


def test_the_default_model_is_shipped():
    assert "cascaded4" in SHIPPED


@needs_shared_data
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_matches_its_card(name):
    model = create_model(name, pretrained=True)  # verifies sha256, refuses anything but safetensors
    card = model.card
    data = load_cifar10("test", SHARED_DATA, n=500)
    with torch.no_grad():
        acc = (model(data.x).argmax(1) == data.y).float().mean().item()
    assert abs(acc - card.clean_acc) <= 0.03, f"{name}: {acc:.3f} on the first 500 vs card {card.clean_acc:.3f}"
