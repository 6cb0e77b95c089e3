"""Test-time defenses (seed 2) that wrap any registered classifier: ``<model>+<defense>[:k=v,...]``.

Examples: ``cascaded4+equi_defense``, ``baseline_cnn4+inv_defense:eps_v=4/255,steps=10``,
``cascaded+noise_defense`` (aliases resolve). Parameters not given keep the defense's defaults; the
canonical name lists the non-default ones, so results of different settings never share a name
(and therefore never share a result store). Values accept fractions such as ``4/255``.

Third-party defenses register through the entry-point group ``symbench.defenses``: the entry point
names a :class:`Defense` subclass (registered as is) or a function that calls :func:`register_defense`.
Its ``purify`` is the declared non-differentiable part: BPDA runs it forward and passes the gradient
straight through it. They load the first time a defense name is looked up.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from fractions import Fraction
from typing import Any

from symbench.models.defenses.base import DeclaredDefense, Defense, count_passes, declares_defense, find_defense, unwrap
from symbench.models.defenses.equivariance import (DEFAULT_TRANSFORMS, EquivarianceDefense, InvarianceDefense, equivariance_loss,
                           equivariance_score, invariance_loss)
from symbench.models.defenses.simple import NoiseDefense, QuantizeDefense
from symbench.models.defenses.transforms import Transform, parse_transforms

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "symbench.defenses"
DEFENSES: dict[str, type[Defense]] = {}
DEFENSE_SOURCES: dict[str, str] = {}   # name → "symbench" or "entry_point:<module:attr>"
_entry_points_loaded = False


def register_defense(cls: type[Defense]) -> type[Defense]:
    """Class decorator: makes ``<model>+<cls.name>`` a model name."""
    if not (isinstance(cls, type) and issubclass(cls, Defense)):
        raise TypeError(f"register_defense wants a subclass of symbench.models.defenses.Defense, got {cls!r}")
    if not cls.name or cls.name == Defense.name or "+" in cls.name or ":" in cls.name:
        raise ValueError(f"defense class {cls.__name__} needs its own `name` (no '+' or ':'), got {cls.name!r}")
    if cls.name in DEFENSES and DEFENSES[cls.name] is not cls:
        log.warning("defense %r registered twice; the later registration wins", cls.name)
    DEFENSES[cls.name] = cls
    DEFENSE_SOURCES.setdefault(cls.name, "symbench" if cls.__module__.startswith("symbench.") else cls.__module__)
    return cls


for _cls in (EquivarianceDefense, InvarianceDefense, NoiseDefense, QuantizeDefense):
    register_defense(_cls)


def _load_entry_points() -> None:
    """Import third-party defenses once (group ``symbench.defenses``)."""
    from symbench.models.registry import load_plugins

    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True

    def handle(ep, obj):
        before = dict(DEFENSES)
        if isinstance(obj, type) and issubclass(obj, Defense):
            register_defense(obj)
        elif callable(obj):
            obj()
        else:
            raise TypeError(f"expected a Defense subclass or a register function, got {type(obj).__name__}")
        for key, cls in DEFENSES.items():
            if before.get(key) is not cls:
                DEFENSE_SOURCES[key] = f"entry_point:{ep.value}"

    load_plugins(ENTRY_POINT_GROUP, handle, "defense entry point")


def defense_source(name: str) -> str:
    """Where a defense came from: ``symbench`` or ``entry_point:<module:attr>``."""
    _load_entry_points()
    return DEFENSE_SOURCES.get(name, "symbench")


def list_defenses() -> list[str]:
    _load_entry_points()
    return sorted(DEFENSES)


def is_defended_name(name: str) -> bool:
    return "+" in name


def _value(defense: str, key: str, raw: Any, default: Any) -> Any:
    """Parse/convert one parameter to the type of its default ("4/255" → float, "true" → bool)."""
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                return raw.lower() in ("1", "true", "yes")
            return bool(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(Fraction(raw)) if isinstance(raw, str) else float(raw)
        if key == "transforms":
            return "|".join(t.spec for t in parse_transforms(raw))
        return str(raw)
    except (ValueError, ZeroDivisionError) as err:
        raise ValueError(f"defense {defense!r}: bad value {raw!r} for {key!r} ({err})") from err


def _fmt(v: Any) -> str:
    return f"{v:.8g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)


def parse_defended(name: str, **overrides) -> tuple[str, type[Defense], dict[str, Any]]:
    """``"cascaded+equi_defense:eps_v=4/255"`` → (base model key, defense class, full parameters).

    The parameters are rounded through their canonical string form, so a model built from them and
    one built from its canonical name are the same model.
    """
    from symbench.models.registry import UnknownModelError, resolve_name

    base, _, rest = name.partition("+")
    dname, _, opts = rest.partition(":")
    if "+" in rest or not base or not dname:
        raise UnknownModelError(f"bad defended model name {name!r}: use <model>+<defense>[:key=value,...] "
                                f"with one defense out of {', '.join(list_defenses())}")
    _load_entry_points()
    if dname not in DEFENSES:
        raise UnknownModelError(f"unknown defense {dname!r} in {name!r}; known: {', '.join(list_defenses())}")
    cls = DEFENSES[dname]
    raw: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bad option {item!r} in {name!r}: use key=value")
        raw[key.strip()] = value.strip()
    raw.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(raw) - set(cls.PARAMS)
    if unknown:
        raise ValueError(f"defense {dname!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(cls.PARAMS)}")
    params = {k: _value(dname, k, raw.get(k, d), d) for k, d in cls.PARAMS.items()}
    params = {k: _value(dname, k, _fmt(v), cls.PARAMS[k]) for k, v in params.items()}
    return resolve_name(base), cls, params


def canonical_name(base_key: str, cls: type[Defense], params: dict[str, Any]) -> str:
    default = {k: _fmt(_value(cls.name, k, d, d)) for k, d in cls.PARAMS.items()}
    changed = [f"{k}={_fmt(v)}" for k, v in params.items() if _fmt(v) != default[k]]
    return f"{base_key}+{cls.name}" + (":" + ",".join(changed) if changed else "")


def resolve_defended(name: str) -> str:
    """Canonical form of a defended model name (aliases resolved, default parameters dropped)."""
    base_key, cls, params = parse_defended(name)
    return canonical_name(base_key, cls, params)


def with_params(name: str, **params) -> str:
    """``name`` with defense parameters set, in canonical form (for sweeps such as seed 2's Table 6):
    ``with_params("cascaded4+equi_defense", eps_v=2/255)`` → ``"cascaded4+equi_defense:eps_v=0.0078431373"``."""
    base_key, cls, full = parse_defended(name, **params)
    return canonical_name(base_key, cls, full)


def defended_card(name: str, base_card=None, **overrides):
    """The card of ``<model>+<defense>``: the base's checkpoint and provenance, the defense's flags."""
    from symbench.models.registry import get_card

    base_key, cls, params = parse_defended(name, **overrides)
    base_card = base_card or get_card(base_key)
    desc = (cls.__doc__ or cls.name).strip().splitlines()[0]
    setting = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    source = defense_source(cls.name)
    return replace(base_card, name=canonical_name(base_key, cls, params), family=f"{base_card.family}+{cls.name}",
                   description=f"{desc} Around {base_key}; {setting}.",
                   paper=cls.paper or base_card.paper, clean_acc=None,
                   base=base_key, base_attr="base", base_sha256=base_card.sha256, code_sha256=None,
                   source=base_card.source if source == "symbench" else source,
                   randomized=cls.randomized or base_card.randomized,
                   test_time_opt=cls.test_time_opt or base_card.test_time_opt,
                   n_forward_passes=cls.forward_passes(params) * base_card.n_forward_passes)


def create_defended(name: str, pretrained: bool = False, checkpoint=None, sha256: str | None = None,
                    **overrides) -> Defense:
    """Build ``<model>+<defense>[:k=v,...]`` in eval mode; ``overrides`` set defense parameters.

    The base is built exactly as ``create_model(base, pretrained, checkpoint, sha256)`` would, so the
    card cites the base's verified checkpoint.
    """
    from symbench.models.registry import create_model

    base_key, cls, params = parse_defended(name, **overrides)
    base = create_model(base_key, pretrained=pretrained, checkpoint=checkpoint, sha256=sha256)
    model = cls(base, **params)
    model.eval()
    model.card = defended_card(name, base_card=base.card, **overrides)
    return model


__all__ = ["DEFENSES", "DEFAULT_TRANSFORMS", "DeclaredDefense", "Defense", "declares_defense", "EquivarianceDefense", "InvarianceDefense", "NoiseDefense",
           "QuantizeDefense", "Transform", "canonical_name", "count_passes", "create_defended", "defended_card", "defense_source",
           "equivariance_loss", "equivariance_score", "find_defense", "invariance_loss", "is_defended_name",
           "list_defenses", "parse_defended", "parse_transforms", "register_defense", "resolve_defended", "unwrap",
           "with_params"]


def _register_resolver() -> None:
    from symbench.models.registry import NameResolver, register_name_resolver

    register_name_resolver(NameResolver(is_defended_name, resolve_defended, defended_card, create_defended))


_register_resolver()  # the registry knows <model>+<defense> names only through this hook
