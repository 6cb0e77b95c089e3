"""Suites are data: ``bench/suites/<name>.toml`` → a frozen :class:`Suite` whose content hash is cited in every row."""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from symbench.paths import package_file
from symbench.bench.attacks import attack_class, create_attack
from symbench.bench.attacks.base import NORMS, check_eps

SUITE_DIR = package_file("symbench.bench.suites")


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite: a registered name, its parameters, and the norms it runs under."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    norms: tuple[str, ...] = NORMS

    @property
    def label(self) -> str:
        """Unique, readable key for rows: the name, plus parameters when they are not the defaults."""
        return self.name + "".join(f"[{k}={v}]" for k, v in self.params)

    def build(self, norm: str):
        return create_attack(self.name, norm=norm, **dict(self.params))


@dataclass(frozen=True)
class Threat:
    norm: str
    eps: tuple[float, ...]


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    threats: tuple[Threat, ...]
    attacks: tuple[AttackSpec, ...]
    n: int = 500
    seed: int = 0
    batch_size: int = 250
    description: str = ""
    kind: str = "attack"        # "attack" (the cascade runner) or a kind registered with register_suite_kind
    options: tuple[tuple[str, object], ...] = ()  # kind-specific settings from the TOML, as sorted items
    sha256: str = field(default="", compare=False)
    eps_override: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (norm, eps) the run replaced; in every row

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}#{self.sha256[:8]}"

    def attacks_for(self, norm: str) -> list[AttackSpec]:
        return [a for a in self.attacks if norm in a.norms]

    def with_overrides(self, n: int | None = None, eps: "list[float] | dict[str, list[float]] | None" = None,
                       batch_size: int | None = None, seed: int | None = None) -> "Suite":
        """Same attacks, other n / eps / batch size / seed (each recorded in the rows).

        ``eps`` is per threat: ``{"linf": [1/255, 2/255]}`` runs only the named threats, at those eps
        (a threat the dict does not name is not run). A plain list is allowed only for a suite with one
        threat, since an Linf eps means nothing on an L2 threat. A norm the suite does not have is
        refused. The suite keeps its name; rows record the override in ``eps_override``.
        """
        from dataclasses import replace

        threats, override = self.threats, self.eps_override
        if eps:
            table = _eps_table(self, eps)
            threats = tuple(Threat(t.norm, table[t.norm]) for t in self.threats if t.norm in table)
            override = tuple(sorted(table.items()))
        return replace(self, threats=threats, n=n or self.n, batch_size=batch_size or self.batch_size,
                       seed=self.seed if seed is None else seed, eps_override=override)


def _eps_table(suite: Suite, eps) -> dict[str, tuple[float, ...]]:
    """Validate an eps override against ``suite``'s threats: norm → eps tuple (see ``Suite.with_overrides``)."""
    norms = [t.norm for t in suite.threats]
    if isinstance(eps, dict):
        table = {str(k).lower(): v for k, v in eps.items()}
    else:
        if len(norms) != 1:
            raise ValueError(f"suite {suite.name!r} has {len(norms)} threats ({', '.join(norms)}): name the threat "
                             f"an eps belongs to, e.g. --eps linf=1/255,2/255 (a bare eps would put an Linf value on "
                             f"the L2 threat or the reverse)")
        table = {norms[0]: eps}
    unknown = sorted(set(table) - set(norms))
    if unknown:
        raise ValueError(f"suite {suite.name!r} has no {'/'.join(unknown)} threat (its threats: {', '.join(norms)}); "
                         "an eps override can only change the eps of a threat the suite has")
    out = {}
    for norm, values in table.items():
        if isinstance(values, (int, float)):
            values = [values]
        values = tuple(float(e) for e in values)
        if not values:
            raise ValueError(f"eps override for {norm} lists no eps")
        for e in values:
            check_eps(e, norm)
        out[norm] = values
    return out


def parse_eps_overrides(values: list[str]) -> "dict[str, list[float]] | list[float]":
    """Parse ``--eps`` arguments: ``["linf=1/255,2/255", "l2=0.25"]`` → ``{"linf": [...], "l2": [0.25]}``;
    ``["8/255", "16/255"]`` (no threat named) → ``[0.0313..., 0.0627...]``, which ``with_overrides`` accepts
    only for a one-threat suite. Fractions are exact (``1/255``); mixing the two forms is refused.
    """
    named: dict[str, list[float]] = {}
    plain: list[float] = []
    for raw in values:
        for item in filter(None, (v.strip() for v in str(raw).split(" "))):
            norm, eq, rest = item.partition("=")
            if eq:
                norm = norm.strip().lower()
                if norm not in NORMS:
                    raise ValueError(f"--eps {item!r}: unknown threat {norm!r}; use one of {', '.join(NORMS)}, "
                                     "e.g. linf=1/255,2/255")
                named.setdefault(norm, []).extend(_fraction(v, item) for v in rest.split(",") if v.strip())
            else:
                plain.extend(_fraction(v, item) for v in item.split(",") if v.strip())
    if named and plain:
        raise ValueError("--eps mixes eps with a threat (linf=...) and without one; name the threat for every eps")
    for norm, eps in named.items():
        if not eps:
            raise ValueError(f"--eps {norm}= lists no eps")
        for e in eps:
            check_eps(e, norm)
    return named or plain


def _fraction(text: str, item: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--eps {item!r}: {text.strip()!r} is not a number or fraction (e.g. 8/255 or 0.5)") from None


def eps_display(eps: float) -> str:
    """8/255-style string when eps is a small multiple of 1/255, else the decimal."""
    f = Fraction(eps).limit_denominator(255)
    if f.denominator == 255 and abs(float(f) - eps) < 1e-9:
        return f"{f.numerator}/255"
    return f"{eps:g}"


_COMMON_KEYS = {"name", "version", "threats", "attacks", "n", "seed", "batch_size", "description", "kind"}
SUITE_KINDS: dict[str, object] = {}


def register_suite_kind(kind: str):
    """Register ``fn(model, suite, data, *, model_name, store_root, device, progress) -> list[row]`` for
    suites whose ``kind`` is not "attack" (CLEVER, corruptions ...)."""
    def deco(fn):
        SUITE_KINDS[kind] = fn
        return fn
    return deco


def parse_suite(data: dict, raw: bytes) -> Suite:
    try:
        name, version = str(data["name"]), int(data["version"])
        kind = str(data.get("kind", "attack"))
        threats = tuple(Threat(str(t["norm"]).lower(), tuple(float(e) for e in t["eps"]))
                        for t in data.get("threats", []))
        attacks_raw = data["attacks"] if kind == "attack" else data.get("attacks", [])
    except (KeyError, TypeError) as err:
        raise ValueError(f"suite is missing a field or has a malformed one: {err}") from err
    for t in threats:
        if t.norm not in NORMS:
            raise ValueError(f"suite {name!r}: norm must be one of {NORMS}, got {t.norm!r}")
        for e in t.eps:
            check_eps(e, t.norm)
    attacks = []
    for key in ("n", "seed", "batch_size"):
        if key in data and not _type_ok(data[key], int):
            raise ValueError(f"suite {name!r}: {key} must be an integer, got {data[key]!r}")
    for a in attacks_raw:
        a = dict(a)
        aname = a.pop("name")
        norms = tuple(a.pop("norms", attack_class_norms(aname)))
        check_attack_params(name, aname, a)
        spec = AttackSpec(aname, tuple(sorted(a.items())), norms)
        for norm in norms:  # fail now, not an hour into the run
            if norm in {t.norm for t in threats}:
                spec.build(norm)
        attacks.append(spec)
    labels = [a.label for a in attacks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"suite {name!r} lists the same attack twice: {labels}")
    if kind == "attack" and not threats:
        raise ValueError(f"suite {name!r} needs at least one [[threats]] entry")
    options = tuple(sorted((k, v) for k, v in data.items() if k not in _COMMON_KEYS))
    return Suite(name, version, threats, tuple(attacks), int(data.get("n", 500)), int(data.get("seed", 0)),
                 int(data.get("batch_size", 250)), str(data.get("description", "")), kind,
                 _freeze(options), hashlib.sha256(raw).hexdigest())


def _type_ok(value, hint) -> bool:
    """Does a TOML value fit a parameter annotation? (int is not bool; a float parameter takes an int.)"""
    import types
    import typing

    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (tuple, list):
        args = [h for h in typing.get_args(hint) if h is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(any(_type_ok(v, h) for h in args) or not args for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this check does not understand: the attack itself decides


def check_attack_params(suite_name: str, attack_name: str, params: dict) -> None:
    """Type-check a suite's attack parameters against the attack's annotated fields, when the suite loads.

    ``steps = "ten"`` would otherwise be a TypeError an hour into a run (or never, if an earlier
    attack broke every example and the row came out *trusted*).
    """
    import dataclasses
    import typing

    if attack_name not in _known():
        return  # building the spec raises UnknownAttackError with suggestions
    cls = attack_class(attack_name)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001  (unresolvable annotations: nothing to check against)
        return
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in params.items():
        if key in fields and key in hints and not _type_ok(value, hints[key]):
            want = getattr(hints[key], "__name__", None) or str(hints[key])
            raise ValueError(f"suite {suite_name!r}, attack {attack_name!r}: parameter {key} = {value!r} must be "
                             f"of type {want}, got {type(value).__name__}")


def _freeze(v):
    """Lists → tuples, recursively, so a Suite stays hashable."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(i) for i in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(i)) for k, i in v.items()))
    return v


def attack_class_norms(name: str) -> tuple[str, ...]:
    return attack_class(name).norms if name in _known() else NORMS


def _known():
    from symbench.bench.attacks import list_attacks
    return set(list_attacks())


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.toml"))


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (``quick``) or path to a .toml file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SUITE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise UnknownSuiteError(f"unknown suite {name_or_path!r}; known suites: {', '.join(list_suites())}")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode())
    except UnicodeDecodeError as err:
        raise ValueError(f"suite file {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:  # "Invalid initial character ... (at line 2, column 3)": which file?
        raise ValueError(f"suite file {path}: not valid TOML: {err}") from None
    try:
        return parse_suite(data, raw)
    except ValueError as err:
        raise ValueError(f"suite file {path}: {err}") from None


def suite_json(suite: Suite) -> str:
    return json.dumps({"name": suite.name, "version": suite.version, "n": suite.n, "seed": suite.seed,
                       "threats": [[t.norm, list(t.eps)] for t in suite.threats],
                       "attacks": [a.label for a in suite.attacks]})
