"""Model registry: ``@register_model`` + frozen :class:`ModelCard`, timm-style but smaller.

Architecture lives in code (a factory function); what a result must cite (checkpoint sha256,
training recipe, measured clean accuracy) lives in data, ``models/checkpoints/<name>.json``, written
by ``symbench train``. Third-party models register through the entry-point group ``symbench.models``.

A wrapper (test-time augmentation, a preprocessing defense, ...) around a registered model says
``base="<registered model>"`` on its card instead of shipping a re-saved copy of the weights: its
factory builds the inner model as ``model.base`` (or the attribute ``base_attr`` names), and
``create_model(wrapper, pretrained=True)`` loads the base's shipped, sha256-verified checkpoint into
it, so the wrapper's rows cite the base's checkpoint sha256 (and the wrapper's own code hash).
"""
from __future__ import annotations

import difflib
import fnmatch
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from torch import nn

from symbench.paths import package_file

log = logging.getLogger(__name__)

CHECKPOINT_DIR = package_file("symbench.models", "checkpoints")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
ENTRY_POINT_GROUP = "symbench.models"


class UnknownModelError(KeyError):
    """No model of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


@dataclass(frozen=True)
class TrainRecipe:
    """How a checkpoint was (or is to be) trained; ``symbench train NAME`` uses these defaults."""

    epochs: int = 6
    batch_size: int = 256
    lr: float = 0.1                 # one-cycle peak, SGD nesterov momentum 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    augment: str = "crop+flip"      # reflect-pad-4 crop + horizontal flip
    adv: str | None = None          # None | "pgd" | "fgsm_rs" (adversarial training)
    adv_eps: float = 8 / 255
    adv_steps: int = 7
    threads: int = 2


# baseline_cnn10_pgdat's recipe (Madry et al. PGD-7 at Linf 8/255, 8 epochs); every *_pgdat model shares it
PGD_AT = TrainRecipe(epochs=8, adv="pgd", adv_eps=8 / 255, adv_steps=7, lr=0.1)


@dataclass(frozen=True)
class ModelCard:
    """Everything a result needs to cite a model.

    ``group`` is the symmetry the logits are built to respect ("C1" none, "C4" rot90-invariant,
    "C8" rot90-invariant and approximately 45°-invariant, "C4-branch" a rotation-equivariant branch
    inside an otherwise plain CNN).
    """

    name: str
    family: str
    group: str = "C1"
    depth: int = 4
    widths: tuple[int, ...] = ()
    num_classes: int = 10
    input_size: tuple[int, int, int] = (3, 32, 32)
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    description: str = ""
    paper: str = ""
    params: int | None = None
    checkpoint: str | None = None   # file name under CHECKPOINT_DIR or an absolute path
    sha256: str | None = None
    url: str | None = None
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    clean_acc: float | None = None  # on the full CIFAR-10 test set, from the checkpoint's card file
    train_seconds: float | None = None
    train_device: str | None = None
    randomized: bool = False
    test_time_opt: bool = False
    n_forward_passes: int = 1
    features_layer: str | None = None  # name of the layer ``model.features(x)`` returns
    base: str | None = None         # a registered model whose shipped checkpoint the inner module loads
    base_attr: str = "base"         # attribute of the wrapper holding that inner module
    base_sha256: str | None = None  # the base's checkpoint sha256 (filled in from the base's card)
    code_sha256: str | None = None  # hash of the model's classes' source (filled in by create_model)
    source: str = "symbench"        # "symbench", an entry point name, or "robustbench"
    notes: str = ""                 # caveats a reader of results must know (e.g. missed accuracy targets)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d


@dataclass
class _Entry:
    factory: Callable[..., nn.Module]
    card: ModelCard


_REGISTRY: dict[str, _Entry] = {}
_ALIASES: dict[str, str] = {}
_entry_points_loaded = False


@dataclass(frozen=True)
class NameResolver:
    """Composite model names a registry entry cannot hold, such as ``<model>+<defense>``.

    A higher-level package (``symbench.models.defenses``) registers one, so the registry never
    imports it back. ``matches(name)`` claims a name; the other three do what the registry's
    functions of the same name do for it.
    """

    matches: Callable[[str], bool]
    resolve: Callable[[str], str]
    card: Callable[[str], "ModelCard"]
    create: Callable[..., nn.Module]


_RESOLVERS: list[NameResolver] = []


def register_name_resolver(resolver: NameResolver) -> None:
    _RESOLVERS.append(resolver)


def _resolver_for(name: str) -> NameResolver | None:
    _ensure_loaded()
    return next((r for r in _RESOLVERS if r.matches(name)), None)


def _card_file(name: str) -> Path:
    return CHECKPOINT_DIR / f"{name}.json"


def _with_trained_card(card: ModelCard) -> ModelCard:
    """Merge ``checkpoints/<name>.json`` (written by training) into the declared card."""
    path = _card_file(card.name)
    if card.source != "symbench" or not path.is_file():
        return card
    try:  # one broken card must not stop every other model from listing
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        recipe = TrainRecipe(**data.get("recipe", {})) if data.get("recipe") else card.recipe
        return replace(card, checkpoint=data.get("checkpoint", card.checkpoint), sha256=data.get("sha256"),
                       clean_acc=data.get("clean_acc"), params=data.get("params", card.params),
                       recipe=recipe, train_seconds=data.get("train_seconds"),
                       train_device=data.get("train_device"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        log.warning("ignoring the trained card %s (%s: %s); %s is listed without its trained checkpoint until "
                    "the card is rewritten", path, type(err).__name__, err, card.name)
        return card


def register_model(name: str | None = None, *, aliases: tuple[str, ...] = (), **card_fields):
    """Decorator registering ``factory(num_classes=10, **kw) -> nn.Module`` under ``name``.

    ``card_fields`` are :class:`ModelCard` fields (family, group, depth, widths, checkpoint, sha256 ...).
    """

    def deco(factory: Callable[..., nn.Module]):
        key = name or factory.__name__
        if card_fields.get("base") and (card_fields.get("checkpoint") or card_fields.get("sha256")):
            raise ValueError(f"model {key!r}: a card with base= cites the base's checkpoint; a wrapper with trained "
                             "weights of its own gives checkpoint= and sha256= of the whole model instead, not both")
        if key in _REGISTRY:
            log.warning("model %r registered twice; the later registration wins", key)
        card_fields.setdefault("family", key)
        card_fields.setdefault("description", (factory.__doc__ or "").strip().split("\n")[0])
        card = ModelCard(name=key, **card_fields)
        _REGISTRY[key] = _Entry(factory, card)
        for alias in aliases:
            _ALIASES[alias] = key
        return factory

    return deco


def load_plugins(group: str, handle: Callable[[Any, Any], None], what: str = "entry point") -> None:
    """Load every entry point of ``group`` and pass ``(ep, obj)`` to ``handle``; a broken plugin only warns."""
    for ep in metadata.entry_points(group=group):
        try:
            handle(ep, ep.load())
        except Exception as err:  # noqa: BLE001  (one broken plugin must not break every other name)
            log.warning("%s %s (%s) failed to load: %s", what, ep.name, ep.value, err)


def _load_entry_points() -> None:
    """Import third-party registrations once (group ``symbench.models``)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True

    def handle(ep, obj):
        before = set(_REGISTRY)
        if callable(obj):
            obj()
        for key in set(_REGISTRY) - before:
            if _REGISTRY[key].card.source == "symbench":
                _REGISTRY[key].card = replace(_REGISTRY[key].card, source=f"entry_point:{ep.value}")

    load_plugins(ENTRY_POINT_GROUP, handle)


def _ensure_loaded() -> None:
    import symbench.models as models  # noqa: F401  (registers the built-in families on import)

    _load_entry_points()


def resolve_name(name: str) -> str:
    """Map an alias (``cascaded``) to its model name (``cascaded4``); unknown names fail helpfully."""
    resolver = _resolver_for(name)  # e.g. <model>+<defense>[:k=v,...], registered by models/defenses
    if resolver is not None:
        return resolver.resolve(name)
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = sorted(_REGISTRY) + sorted(_ALIASES)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} `symbench list` shows all {len(_REGISTRY)} models.")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted.

    An alias that matches counts as its model, the way :func:`create_model` resolves it:
    ``list_models("cascaded")`` is ``["cascaded4"]``, as ``create_model("cascaded")`` builds ``cascaded4``.
    """
    _ensure_loaded()
    names = {n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)}
    names |= {key for alias, key in _ALIASES.items() if key in _REGISTRY and fnmatch.fnmatch(alias, pattern)}
    return sorted(names)


def registered_factories() -> dict[str, Callable[..., nn.Module]]:
    """name → factory of every registered model (a copy: who registered what, e.g. for submission checks)."""
    _ensure_loaded()
    return {k: e.factory for k, e in _REGISTRY.items()}


def get_card(name: str) -> ModelCard:
    """The card of a model, with what its trained checkpoint's card file adds."""
    resolver = _resolver_for(name)  # a defended model: the base's card plus the defense's flags
    if resolver is not None:
        return resolver.card(name)
    key = resolve_name(name)
    return _with_base_card(_with_trained_card(_REGISTRY[key].card))


def _with_base_card(card: ModelCard, depth: int = 0) -> ModelCard:
    """A wrapper's card (``base=``) cites the base's checkpoint and sha256 and inherits its randomness flags."""
    if not card.base:
        return card
    if depth > 8:
        raise UnknownModelError(f"model {card.name!r}: its chain of base= models does not end (a cycle?)")
    base_name = resolve_name(card.base)
    if base_name == card.name:
        raise UnknownModelError(f"model {card.name!r} names itself as its base")
    resolver = _resolver_for(base_name)
    base_card = resolver.card(base_name) if resolver else _with_base_card(
        _with_trained_card(_REGISTRY[base_name].card), depth + 1)
    ckpt = base_card.checkpoint
    if ckpt and not Path(ckpt).is_absolute():  # relative names are under CHECKPOINT_DIR, as for the base
        ckpt = str(CHECKPOINT_DIR / ckpt)
    return replace(card, base=base_name, checkpoint=ckpt, sha256=base_card.sha256, base_sha256=base_card.sha256,
                   randomized=card.randomized or base_card.randomized,
                   test_time_opt=card.test_time_opt or base_card.test_time_opt)


def checkpoint_path(card: ModelCard) -> Path | None:
    if not card.checkpoint:
        return None
    p = Path(card.checkpoint)
    return p if p.is_absolute() else CHECKPOINT_DIR / p


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def create_model(name: str, pretrained: bool = False, checkpoint: str | Path | None = None,
                 sha256: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model in eval mode, optionally with its verified checkpoint.

    Args:
        name: a registered name or alias (``cascaded`` → ``cascaded4``).
        pretrained: load the card's checkpoint (sha256 verified; safetensors only). For a wrapper
            (card ``base=``) that is the base's checkpoint, loaded into ``model.<base_attr>``.
        checkpoint: load this safetensors file instead (into the inner model of a wrapper);
            ``sha256`` then is checked if given.
        **kwargs: architecture arguments for the factory (None values are dropped).

    The returned module carries ``model.card`` (a :class:`ModelCard`) with ``code_sha256`` set; a model
    built without weights cites no checkpoint (its fingerprint is then its weights' hash).
    """
    from symbench.models.checkpoints import CheckpointError, load_weights
    from symbench.models.code_hash import code_sha256

    resolver = _resolver_for(name)  # a defended model: builds the base like this function, then wraps it
    if resolver is not None:
        model = resolver.create(name, pretrained=pretrained, checkpoint=checkpoint, sha256=sha256, **kwargs)
        if getattr(model.card, "code_sha256", None) is None:
            model.card = replace(model.card, code_sha256=code_sha256(model))
        return model
    key = resolve_name(name)
    card = get_card(key)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    check_factory_kwargs(key, _REGISTRY[key].factory, kwargs)
    model = _REGISTRY[key].factory(**kwargs)
    if checkpoint is not None:
        if card.base:
            _load_base_weights(model, card, checkpoint, sha256)
        else:
            load_weights(model, checkpoint, sha256)
        card = replace(card, checkpoint=str(checkpoint), sha256=sha256 or card.sha256,
                       base_sha256=(sha256 or card.sha256) if card.base else None)
    elif pretrained:
        if card.base:
            _load_base_weights(model, card)
        else:
            path = checkpoint_path(card)
            if path is None or not card.sha256:
                raise CheckpointError(f"model {key!r} has no trained checkpoint in its card; "
                                      f"train one with `symbench train {key}`")
            load_weights(model, path, card.sha256)
    else:  # random weights: citing the trained checkpoint's sha256 would key the store with the wrong weights
        card = replace(card, checkpoint=None, sha256=None, base_sha256=None)
    model.eval()
    model.card = replace(card, params=count_params(model), code_sha256=code_sha256(model))
    return model


def check_factory_kwargs(name: str, factory: Callable[..., nn.Module], kwargs: dict) -> None:
    """Refuse architecture arguments the factory does not take, naming those it does (not a TypeError from deep
    inside a constructor naming neither the model nor what it accepts)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C factory: nothing to check against
        return
    takes = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    bad = sorted(set(kwargs) - set(takes))
    if bad and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"model {name!r} has no architecture argument(s) {', '.join(bad)}; it takes "
                        f"{', '.join(takes) or 'none'}")


def _load_base_weights(model: nn.Module, card: ModelCard, checkpoint: str | Path | None = None,
                       sha256: str | None = None) -> None:
    """Load a wrapper's base checkpoint (the base card's, or ``checkpoint``) into ``model.<card.base_attr>``.

    The wrapper may hold no persistent weights outside that module: the rows cite only the base's
    sha256, so anything else would be weights no row accounts for.
    """
    from symbench.models.checkpoints import CheckpointError, load_weights

    inner = getattr(model, card.base_attr, None)
    if not isinstance(inner, nn.Module):
        raise CheckpointError(f"model {card.name!r}: its card says base={card.base!r}, so its factory must hold the "
                              f"inner model as `model.{card.base_attr}` (or set base_attr= on the card); "
                              f"{type(model).__name__} has no such submodule")
    own = [k for k in model.state_dict() if not k.startswith(card.base_attr + ".")]
    if own:
        raise CheckpointError(f"model {card.name!r} holds weights outside model.{card.base_attr} ({', '.join(own[:3])}); "
                              "a card with base= cites only the base's checkpoint, so save the whole model and give "
                              "checkpoint= and sha256= instead (or make them non-persistent buffers)")
    if checkpoint is not None:
        load_weights(inner, checkpoint, sha256)
        return
    base_card = get_card(card.base)
    if base_card.base:  # a wrapper of a wrapper, or of <model>+<defense>: one level down
        _load_base_weights(inner, base_card)
        return
    path = checkpoint_path(base_card)
    if path is None or not base_card.sha256:
        raise CheckpointError(f"model {card.name!r} wraps {card.base!r}, which has no trained checkpoint in its card; "
                              f"train one with `symbench train {card.base}`")
    load_weights(inner, path, base_card.sha256)
