import sys
import types
from importlib import metadata

import pytest
import torch

import symbench.models as models
from symbench.models import UnknownModelError, create_model, get_card, list_models, register_model, resolve_name
from symbench.models import registry

ALL = list_models()


def test_seed1_family_is_registered():
    for name in ["baseline_cnn4", "baseline_cnn10", "parallel_rot4", "parallel_rotscale4", "cascaded4",
                 "weighted_rotscale4", "equivariant4", "equivariant10", "baseline_cnn10_at",
                 "parallel_rot10", "cascaded10", "weighted_rotscale10"]:
        assert name in ALL


@pytest.mark.parametrize("name", ALL)
def test_every_model_maps_unit_images_to_logits_in_eval_mode(name):
    model = create_model(name)
    assert not model.training and all(not m.training for m in model.modules())
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.card.name == name and model.card.params == sum(p.numel() for p in model.parameters())


def test_aliases_resolve_to_the_family_default():
    assert resolve_name("cascaded") == "cascaded4"
    assert resolve_name("equivariant") == "equivariant4"
    assert get_card("cascaded").name == "cascaded4"


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError) as err:
        create_model("cascadde4")
    assert "cascaded4" in str(err.value)


def test_third_party_entry_point_registers_without_code_changes(monkeypatch):
    mod = types.ModuleType("thirdparty_symbench_plugin")

    def register():
        @register_model("thirdparty_linear", family="thirdparty", group="C1", depth=1)
        def thirdparty_linear(num_classes=10):
            """A third-party linear model."""
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, num_classes))

    mod.register = register
    monkeypatch.setitem(sys.modules, "thirdparty_symbench_plugin", mod)
    ep = metadata.EntryPoint("thirdparty", "thirdparty_symbench_plugin:register", registry.ENTRY_POINT_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [ep] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    assert "thirdparty_linear" in list_models("thirdparty*")
    card = get_card("thirdparty_linear")
    assert card.source == "entry_point:thirdparty_symbench_plugin:register"
    assert create_model("thirdparty_linear")(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_readme_model_table_is_generated_from_the_cards():
    from pathlib import Path

    from symbench.models.table import BEGIN, END, models_table

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split(BEGIN)[1].split(END)[0].strip()
    assert table == models_table(), "README table is stale: run `symbench models-table --write`"
