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


# ---- wrappers that cite a registered checkpoint (card base=) -------------------------------------------------------

class _FlipAverage(torch.nn.Module):
    """A wrapper with no weights of its own around ``.base``."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return (self.base(x) + self.base(x.flip(3))) / 2


@pytest.fixture
def private_registry(monkeypatch):
    list_models()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_wrapper_card_loads_the_base_checkpoint_into_its_inner_model(private_registry):
    register_model("wraptest_flip", base="baseline_cnn4", description="d", paper="p")(
        lambda num_classes=10: _FlipAverage(create_model("baseline_cnn4")))
    base = create_model("baseline_cnn4", pretrained=True)
    wrapped = create_model("wraptest_flip", pretrained=True)
    for k, v in base.state_dict().items():
        assert torch.equal(wrapped.base.state_dict()[k], v), k
    card = wrapped.card
    assert card.base == "baseline_cnn4" and card.sha256 == card.base_sha256 == get_card("baseline_cnn4").sha256
    assert card.code_sha256 and card.code_sha256 != base.card.code_sha256  # the wrapper's class is in its hash
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(wrapped(x), (base(x) + base(x.flip(3))) / 2)


def test_wrapper_card_refuses_what_its_sha256_would_not_cover(private_registry):
    from symbench.models import CheckpointError

    class WithHead(_FlipAverage):
        def __init__(self, base):
            super().__init__(base)
            self.head = torch.nn.Linear(10, 10)

    register_model("wraptest_head", base="baseline_cnn4")(lambda num_classes=10: WithHead(create_model("baseline_cnn4")))
    with pytest.raises(CheckpointError, match="holds weights outside model.base"):
        create_model("wraptest_head", pretrained=True)
    register_model("wraptest_noattr", base="baseline_cnn4")(lambda num_classes=10: create_model("baseline_cnn4"))
    with pytest.raises(CheckpointError, match="must hold the inner model as `model.base`"):
        create_model("wraptest_noattr", pretrained=True)
    with pytest.raises(ValueError, match="not both"):
        register_model("wraptest_both", base="baseline_cnn4", sha256="0" * 64)(lambda num_classes=10: None)


def test_a_model_built_without_weights_cites_no_checkpoint():
    """Random weights keyed by the trained checkpoint's sha256 would reuse that checkpoint's stored outcomes."""
    assert get_card("baseline_cnn4").sha256
    m = create_model("baseline_cnn4")
    assert m.card.sha256 is None and m.card.checkpoint is None
    assert create_model("baseline_cnn4", pretrained=True).card.sha256 == get_card("baseline_cnn4").sha256


# ---- the model's code in its provenance ------------------------------------------------------------------------------

def _import_file(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


WRAPPER_SRC = '''
import torch

class Wrap(torch.nn.Module):
    """Doc."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(x) / 2
'''


def test_code_hash_follows_forward_not_comments_or_docstrings(tmp_path):
    from symbench.models.code_hash import code_sha256

    inner = create_model("baseline_cnn4")

    def hash_of(src, i):
        (tmp_path / f"w{i}.py").write_text(src)
        return code_sha256(_import_file(tmp_path / f"w{i}.py", f"codehash_w{i}").Wrap(inner))

    h0 = hash_of(WRAPPER_SRC, 0)
    assert h0 == hash_of(WRAPPER_SRC.replace('"""Doc."""', '"""Other words."""  # a comment'), 1)
    assert h0 != hash_of(WRAPPER_SRC.replace("/ 2", "* 0.5"), 2)      # same outputs, other code: a new run
    assert h0 != code_sha256(_FlipAverage(inner))
    ns: dict = {}
    exec(WRAPPER_SRC, ns)                                              # no source file: bytecode is hashed
    exec(WRAPPER_SRC.replace("/ 2", "* 0.5"), ns2 := {})
    assert code_sha256(ns["Wrap"](inner)) != code_sha256(ns2["Wrap"](inner))


# ---- third-party defenses (entry-point group symbench.defenses) -------------------------------------------------------

def test_third_party_defense_registers_through_its_entry_point(monkeypatch):
    import symbench.models.defenses as defenses
    from symbench.models.defenses import Defense

    class Halve(Defense):
        """Halves the contrast (a test defense)."""
        name = "thirdparty_halve"
        randomized = False
        paper = "none: unit test"

        def purify(self, x, *, unrolled=False):
            return x / 2

    mod = types.ModuleType("thirdparty_defense_plugin")
    mod.Halve = Halve
    monkeypatch.setitem(sys.modules, "thirdparty_defense_plugin", mod)
    ep = metadata.EntryPoint("halve", "thirdparty_defense_plugin:Halve", defenses.ENTRY_POINT_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [ep] if kw.get("group") == defenses.ENTRY_POINT_GROUP else real(**kw))
    monkeypatch.setattr(defenses, "_entry_points_loaded", False)
    monkeypatch.setattr(defenses, "DEFENSES", dict(defenses.DEFENSES))
    monkeypatch.setattr(defenses, "DEFENSE_SOURCES", dict(defenses.DEFENSE_SOURCES))
    assert "thirdparty_halve" in defenses.list_defenses()
    card = get_card("baseline_cnn4+thirdparty_halve")
    assert card.source == "entry_point:thirdparty_defense_plugin:Halve" and card.paper == "none: unit test"
    assert card.base == "baseline_cnn4" and card.base_sha256 == get_card("baseline_cnn4").sha256
    m = create_model("baseline_cnn4+thirdparty_halve", pretrained=True)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(m(x), m.base(x / 2))
    assert m.card.code_sha256 != create_model("baseline_cnn4+quantize_defense").card.code_sha256
