"""Escalation: when a row is flagged for hidden or noisy gradients, attack its survivors with remedies that
need no knowledge of the model's insides, and report the worst case next to the suite's number.

A *suspect* verdict alone leaves a user without a number to believe. The remedies, cheapest first, as a
cascade on the examples the suite left robust (Athalye et al. 2018; Tramer et al. 2020; Croce et al. 2022):

1. ``logits``: only when ``outputs_are_logits`` failed. APGD-CE then APGD-T on the log of the normalized
   outputs, ``log(p / sum p)``: for probabilities p = softmax(z) that is z up to a per-example constant, so
   cross-entropy and DLR see the logits' gradients again. Costs what the suite's APGD costs.
2. ``transfer-<surrogate>``: APGD-CE then APGD-T crafted on a surrogate, judged on the model itself:
   defeats shattered or saturated gradients (quantization, saturated softmax) of a model that computes the
   surrogate's function. The surrogate, in order: one the user names; a ``<model>+<defense>``'s undefended
   base; the registered model the card's ``base=`` wraps; else the default rule (:data:`DEFAULT_RULE`).
3. ``apgd`` / ``apgd_eot<k>``: APGD-CE then APGD-T on the model; for a randomized model AutoAttack's own
   recipe for randomized defenses (version 'rand': APGD-CE then untargeted APGD-DLR, EOT over k draws), a
   fifth of the passes of APGD-CE + APGD-T over 9 targets, on a defense costing ~20 base passes per forward.
   For a deterministic model whose suite already ran both at the standard budget it would repeat them, so
   it is left out.
4. ``square<q>``: Square at its full query budget (5000): gradient-free, so no gradient masking stops it.

Every example is judged worst of k (broken if any of k fresh draws misclassifies it). Each remedy keeps its
per-example result in its own store group (``escalate_<remedy>_<threat>_<eps>_<subset hash>``: the remedy,
its surrogate and the survivors it attacked name it, so two escalations never overwrite each other), and the
escalated per-example robust mask goes to the group the row names (``escalation.store_group``), where
:func:`escalated_mask` reads it back. The row keeps both numbers, ``robust_acc`` (the suite's) and
``escalated_robust_acc``, and ``escalation_id`` (a digest of the remedies and their budgets) is part of the row's
key: a rerun with escalation supersedes the unescalated row.

Budgets (suite options, AutoAttack's by default): ``escalate_apgd_iters`` (100), ``escalate_eot`` (20),
``escalate_square_queries`` (5000).

A remedy runs for up to an hour (Square's 5000 queries on 400 survivors; APGD with EOT 20 on a defense that
costs ~20 base passes per forward), so it is stored in pieces (:data:`PIECE`: ``escalate_piece`` survivors
each, batch j of its group): a killed escalation resumes at the piece it was in. Every piece runs with the
remedy's seeds; a remedy that fits in one piece is stored as before pieces existed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from symbench.bench.attacks import create_attack
from symbench.bench.checks.spot import Cascade, Step, cached_cascade, row_group, runs_standard_apgd, seed_of, run_cascade
from symbench.bench.run.progress import PassCounter, Heartbeat

log = logging.getLogger(__name__)

VERSION = 2  # 2: one store group per remedy, the mask record, the logits remedy and the default surrogate
# checks whose failure means the gradients may be hidden, shattered, saturated or noisy
TRIGGERS = ("gradients_nonzero", "outputs_are_logits", "large_eps_breaks_all", "black_box_not_stronger",
            "transfer_not_stronger", "deterministic_or_eot", "more_steps_converged", "iterative_beats_single_step",
            "apgd_not_stronger")
DEFAULTS = {"apgd_iters": 100, "eot": 20, "square_queries": 5000}
# survivors per stored piece of a remedy (suite option escalate_piece): a deterministic model's pieces take
# minutes; a randomized model's examples cost EOT x draws more, so its pieces are smaller
PIECE = {"deterministic": 64, "randomized": 8}
# the default surrogate when none is named and the model has no base of its own
AT_CLEAN_BELOW = 0.70
DEFAULT_RULE = ("no surrogate named and no base: the shipped plain CNN of matching depth (baseline_cnn4 for a card "
                "of depth <= 4, else baseline_cnn10) and, when the row's clean accuracy is below "
                f"{AT_CLEAN_BELOW:.0%} (CIFAR-10 adversarially trained models sit at 50-65%, standard ones above "
                "80%), also the PGD-trained baseline_cnn10_pgdat; each is its own transfer remedy")


@dataclass
class Escalation:
    """One row's escalated worst case: the suite's survivors attacked again by the remedies."""

    norm: str
    eps: float
    trigger: list[str]
    robust: torch.Tensor             # (N,) bool: robust under the suite and every remedy (worst of k)
    suite_robust_acc: float
    broken_by: dict[str, int]        # remedy step -> examples it broke first
    remedies: list[str]
    surrogate: str | None
    n_attacked: int
    n_forward: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    id: str = ""                     # digest of the remedies and budgets: part of the row's key
    store_group: str = ""            # where the escalated per-example mask is stored (batch 0)
    surrogate_rule: str = ""         # how the surrogate was chosen
    effects: list[dict] = field(default_factory=list)  # per remedy: what it attacked and broke, its store group
    piece: int = 0                   # survivors per stored piece of a remedy (0: before pieces existed)

    @property
    def robust_acc(self) -> float:
        return self.robust.float().mean().item()

    def row_fields(self) -> dict:
        return {"escalated_robust_acc": self.robust_acc, "escalation_id": self.id,
                "escalation": {"trigger": self.trigger, "suite_robust_acc": self.suite_robust_acc,
                               "robust_acc": self.robust_acc, "remedies": self.remedies, "broken_by": self.broken_by,
                               "surrogate": self.surrogate, "surrogate_rule": self.surrogate_rule,
                               "effects": self.effects, "n_attacked": self.n_attacked, "n_forward": self.n_forward,
                               "seconds": round(self.seconds, 3), "notes": self.notes, "id": self.id,
                               "store_group": self.store_group, "piece": self.piece, "version": VERSION}}


def flagged(row_checks: dict | None) -> list[str]:
    """The hidden/noisy-gradient checks a row failed."""
    checks = (row_checks or {}).get("checks", row_checks or {})
    return [n for n in TRIGGERS if (checks.get(n) or {}).get("status") == "fail"]


def _shipped(name: str, device) -> nn.Module:
    from symbench.models import create_model, resolve_name

    return create_model(resolve_name(name), pretrained=True).to(device).eval()


def default_surrogates(model: nn.Module, clean_acc: float) -> list[str]:
    """The shipped models :data:`DEFAULT_RULE` picks for ``model`` at a row's clean accuracy."""
    card = getattr(model, "card", None)
    depth = getattr(card, "depth", None)
    names = ["baseline_cnn4" if depth is not None and depth <= 4 else "baseline_cnn10"]
    if clean_acc < AT_CLEAN_BELOW:
        names.append("baseline_cnn10_pgdat")
    return names


def resolve_surrogates(model: nn.Module, surrogate, device, clean_acc: float = 1.0
                       ) -> tuple[list[tuple[str, nn.Module]], str, list[str]]:
    """The transfer surrogates ``[(name, module)]``, the rule that chose them, and notes on any that failed to load.

    ``surrogate``: a module or registered name (the user's); False: no transfer; None: a defended model's base,
    else the registered model the card's ``base=`` wraps, else :data:`DEFAULT_RULE`.
    """
    from symbench.models.defenses import find_defense

    if surrogate is False:
        return [], "transfer turned off", []
    if isinstance(surrogate, nn.Module):
        card = getattr(surrogate, "card", None)
        return [(getattr(card, "name", None) or type(surrogate).__name__, surrogate.eval())], "named by the user", []
    if isinstance(surrogate, str) and surrogate:
        from symbench.models import resolve_name

        return [(resolve_name(surrogate), _shipped(surrogate, device))], "named by the user", []
    defense = find_defense(model)
    card = getattr(model, "card", None)
    if defense is not None:
        return [((card.name.split("+")[0] if card is not None else "base"), defense.base)], \
            "the defended model's undefended base", []
    if getattr(card, "base", None):
        return [(card.base, _shipped(card.base, device))], "the registered model the card's base= wraps", []
    got, notes = [], []
    for name in default_surrogates(model, clean_acc):
        try:
            net = _shipped(name, device)
        except Exception as err:  # noqa: BLE001  (a wheel without that checkpoint: say so, go on)
            notes.append(f"default surrogate {name} unavailable ({type(err).__name__}: {err})")
            continue
        if same_weights(model, net):
            notes.append(f"default surrogate {name} left out: it is the model itself (same weights), so a transfer "
                         "from it would repeat the white-box APGD")
            continue
        got.append((name, net))
    return got, DEFAULT_RULE, notes


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold the same state (names and values; layout and BatchNorm folding do not matter)."""
    if not (isinstance(a, nn.Module) and isinstance(b, nn.Module)):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu())
                                          for k in sa)


class LogNormalized(nn.Module):
    """``log(p / sum p)`` of a model whose outputs are (scaled) probabilities: its logits up to a constant."""

    def __init__(self, model: nn.Module, floor: float = 1e-30):
        super().__init__()
        self.model, self.floor = model, floor

    def forward(self, x):
        p = self.model(x).clamp_min(0)
        return torch.log((p / p.sum(1, keepdim=True).clamp_min(self.floor)).clamp_min(self.floor))


@dataclass
class Remedy:
    """One remedy: a short store-safe tag, the cascade steps it runs, and what identifies its result."""

    tag: str
    steps: list[Step]
    config: dict


def _apgd_pair(norm: str, eps: float, *, iters: int, targets: int, eot: int | None, seed: int, prefix: str,
               net: nn.Module | None = None, wrap=None, second: str = "apgd_t") -> list[Step]:
    """APGD-CE then ``second`` (APGD-T, or APGD-DLR for AutoAttack's rand recipe) as two steps, crafted on
    ``net`` (a surrogate), on ``wrap(model)``, or on the model."""
    ce = create_attack("apgd_ce", norm=norm, iters=iters, eot_iter=eot)
    t = (create_attack("apgd_t", norm=norm, iters=iters, targets=targets, eot_iter=eot) if second == "apgd_t"
         else create_attack(second, norm=norm, iters=iters, eot_iter=eot))

    def on(atk, s):
        if net is not None:
            return lambda _model, x, y: atk(net, x, y, eps, seed=s)
        if wrap is not None:
            return lambda model, x, y: atk(wrap(model), x, y, eps, seed=s)
        return lambda model, x, y: atk(model, x, y, eps, seed=s)

    return [(f"{prefix}apgd_ce", on(ce, seed_of(seed, prefix, "ce"))),
            (f"{prefix}{second}", on(t, seed_of(seed, prefix, "t")))]


def remedies_for(model, suite, norm: str, eps: float, *, draws: int, trigger: list[str],
                 surrogates: list[tuple[str, nn.Module]], seed: int, budget: dict, num_classes: int
                 ) -> tuple[list[Remedy], list[str]]:
    """The remedies for one row, cheapest first, and notes on the ones left out."""
    out, notes = [], []
    targets = min(9, num_classes - 1)
    iters, eot = int(budget["apgd_iters"]), (int(budget["eot"]) if draws > 1 else None)
    common = {"iters": iters, "targets": targets, "eot": eot, "draws": draws}
    if "outputs_are_logits" in trigger:
        out.append(Remedy("logits", _apgd_pair(norm, eps, iters=iters, targets=targets, eot=eot, seed=seed,
                                               prefix="logits:", wrap=LogNormalized), {"remedy": "logits", **common}))
    for name, net in surrogates:
        out.append(Remedy(f"transfer-{_safe(name)}",
                          _apgd_pair(norm, eps, iters=iters, targets=targets, eot=None, seed=seed,
                                     prefix=f"transfer[{name}]:", net=net),
                          {"remedy": "transfer", "surrogate": name, **common, "eot": None}))
    if not surrogates:
        notes.append("no surrogate (name one with --surrogate; a <model>+<defense> uses its base, a card's base= "
                     "its base): no transfer")
    if draws > 1 or not runs_standard_apgd(suite, norm):
        tag = f"apgd_eot{eot}" if eot else "apgd"
        # randomized: AutoAttack-rand's pair (CE, then untargeted DLR), as AutoAttack runs a randomized defense
        second = "apgd_dlr" if eot else "apgd_t"
        cfg = {"remedy": "apgd", **common, **({"second": second, "targets": None} if eot else {})}
        out.append(Remedy(tag, _apgd_pair(norm, eps, iters=iters, targets=targets, eot=eot, seed=seed,
                                          prefix=f"{tag}:" if eot else "", second=second), cfg))
    else:
        notes.append("deterministic model and the suite already ran APGD-CE + APGD-T: not repeated")
    q = int(budget["square_queries"])
    sq = create_attack("square", norm=norm, queries=q)
    out.append(Remedy(f"square{q}", [(f"square[{q}]", lambda m, x, y: sq(m, x, y, eps, seed=seed_of(seed, "square")))],
                      {"remedy": "square", "queries": q, "draws": draws}))
    return out, notes


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _mask_check(n: int):
    def check(rec):
        robust = rec.get("robust")
        if not isinstance(robust, list) or len(robust) != n or not all(type(v) is bool for v in robust):
            raise ValueError(f"'robust' must be a list of {n} booleans")
    return check


def budget_of(suite, **given) -> dict:
    """Escalation budgets: an explicit value, else the suite's ``escalate_<key>`` option, else AutoAttack's."""
    return {k: (given.get(k) if given.get(k) is not None else suite.option(f"escalate_{k}", d))
            for k, d in DEFAULTS.items()}


def escalate(model: nn.Module, suite, data, outcomes: list, *, checks: dict | None = None, surrogate=None,
             store=None, device="cpu", force: bool = False, square_queries: int | None = None,
             eot: int | None = None, apgd_iters: int | None = None, num_classes: int | None = None
             ) -> list[Escalation | None]:
    """Escalated worst case per row (None for a row not flagged, unless ``force``).

    Args:
        model: the evaluated model (eval mode, on ``device``).
        suite, data, outcomes: the run (``outcomes`` from ``run_suite``, indexing ``data``).
        checks: the run's checks record (``cached_checks``); a row escalates when it failed one of ``TRIGGERS``.
        surrogate: a module or registered model name for the transfer remedy; None: the model's base, else the
            default rule; False: no transfer.
        store: the run's Store (per-example results, so a rerun costs nothing; the mask the row names).
        square_queries, eot, apgd_iters: budgets (None: the suite's ``escalate_*`` option, else AutoAttack's
            5000 queries, 20 draws, 100 iterations).
    """
    from symbench.bench.checks import row_checks
    from symbench.bench.run.runner import scoring_draws

    card = getattr(model, "card", None)
    num_classes = num_classes or getattr(card, "num_classes", 10)
    budget = budget_of(suite, square_queries=square_queries, eot=eot, apgd_iters=apgd_iters)
    x, y = data.x.to(device), data.y.to(device)
    draws = scoring_draws(model, suite, x)
    piece = int(suite.option("escalate_piece", PIECE["randomized" if draws > 1 else "deterministic"]))
    if piece < 1:
        raise ValueError(f"suite option escalate_piece must be >= 1, got {piece}")
    sur_cache: dict[bool, tuple] = {}
    out: list[Escalation | None] = []
    for o in outcomes:
        trig = flagged(row_checks(checks, o)) if checks else []
        if not trig and not force:
            out.append(None)
            continue
        at_like = o.clean_acc < AT_CLEAN_BELOW  # the default rule depends on it; resolve each case once
        if at_like not in sur_cache:
            sur_cache[at_like] = resolve_surrogates(model, surrogate, device, o.clean_acc)
        surrogates, rule, sur_notes = sur_cache[at_like]
        row_seed = seed_of(suite.seed, "escalate", o.norm, float(o.eps))
        remedies, notes = remedies_for(model, suite, o.norm, float(o.eps), draws=draws, trigger=trig,
                                       surrogates=surrogates, seed=row_seed, budget=budget, num_classes=num_classes)
        # the piece size is part of the identity: pieces draw their random starts apart, so results differ
        esc_id = _digest({"version": VERSION, "remedies": [r.config for r in remedies], "piece": piece})
        group_row = row_group(o.norm, o.eps)
        log.info("escalating %s eps %.4f (flagged: %s): %s on %d survivors", o.norm, o.eps, ", ".join(trig) or "forced",
                 ", ".join(r.tag for r in remedies), int(o.robust.sum()))
        robust = o.robust.clone()
        broken_by, effects, labels = {}, [], []
        n_forward = seconds = 0
        # a remedy runs for minutes (Square's 5000 queries): a line every few seconds, as the suite's attacks give
        with PassCounter(model) as fc, Heartbeat(f"escalation {o.norm} eps={o.eps:.4f}", counter=fc) as beat:
            for i_rem, rem in enumerate(remedies):
                idx = robust.nonzero().flatten().to(y.device)
                beat.set(f"{rem.tag} ({i_rem + 1}/{len(remedies)}) on {len(idx)} survivors")
                labels += [s for s, _ in rem.steps]
                group = f"escalate_{rem.tag}_{group_row}_{_digest(idx.tolist())[:8]}"
                res = in_pieces(store, group, idx, {**rem.config, "steps": [s for s, _ in rem.steps]},
                                lambda sub, rem=rem: run_cascade(model, rem.steps, x, y, sub, draws, num_classes),
                                piece, lambda j, k, rem=rem, i=i_rem, n=len(idx): beat.set(
                                    f"{rem.tag} ({i + 1}/{len(remedies)}) on {n} survivors, piece {j + 1}/{k}"))
                for i, b in zip(res.idx, res.broken_by):
                    if b is not None:
                        robust[i] = False
                broken_by.update(res.per_step)
                n_forward += res.n_forward
                seconds += res.seconds
                effects.append({"remedy": rem.tag, "attacked": len(res.idx), "broke": res.broken,
                                "robust_acc_after": robust.float().mean().item(), "store_group": group})
                log.info("escalation %s eps %.4f: %s broke %d of %d, %.0f s", o.norm, o.eps, rem.tag, res.broken,
                         len(res.idx), res.seconds)
        mask_group = f"escalated_{group_row}_{esc_id}"
        if store is not None:
            store.put(mask_group, 0, {"robust": robust.tolist(), "suite_robust": o.robust.tolist(), "id": esc_id,
                                      "remedies": [e["store_group"] for e in effects]})
        surrogate_names = ",".join(n for n, _ in surrogates) or None
        out.append(Escalation(o.norm, float(o.eps), trig or ["forced"], robust, o.robust_acc, broken_by, labels,
                              surrogate_names, int(o.robust.sum()), n_forward, seconds, sur_notes + notes, esc_id,
                              mask_group, rule, effects, piece))
    return out


def in_pieces(store, group: str, idx: torch.Tensor, config: dict, run, piece: int, started=None) -> Cascade:
    """One remedy's cascade on ``idx``, computed and stored ``piece`` examples at a time (batch j of ``group``),
    so a killed run keeps the pieces it finished; the pieces' results, joined. ``started(j, k)``: piece j of k."""
    if len(idx) <= piece:  # one piece: stored exactly as before pieces existed
        if started is not None:
            started(0, 1)
        return cached_cascade(store, group, idx, config, lambda: run(idx))
    k = -(-len(idx) // piece)
    parts = []
    for j in range(k):
        sub = idx[j * piece:(j + 1) * piece]
        if started is not None:
            started(j, k)
        parts.append(cached_cascade(store, group, sub, {**config, "piece": piece, "pieces": k},
                                    lambda sub=sub: run(sub), batch=j))
    return Cascade.join(parts)


def escalated_mask(row: dict, store_root) -> list[bool] | None:
    """The escalated per-example robust mask behind ``row`` (from the store group its escalation names), or None
    when the row has no escalation or the store lacks (or rejects) the record.

    Raises ValueError when the stored mask does not give the row's ``escalated_robust_acc``.
    """
    from symbench.bench.run.store import Store

    esc = row.get("escalation") or {}
    group = esc.get("store_group")
    if not group or row.get("escalated_robust_acc") is None:
        return None
    n = int(row.get("n_evaluated") or row["n"])
    rec = Store(store_root, row["model"], row["store_key"]).get(group, 0, check=_mask_check(n))
    if rec is None:
        return None
    mask = rec["robust"]
    if abs(sum(mask) / n - row["escalated_robust_acc"]) > 1e-6:  # the row's mean is a float32 mean
        raise ValueError(f"{row['model']} {row.get('suite_id')} {row.get('threat')} eps={row.get('eps')}: the stored "
                         f"escalated mask gives {sum(mask) / n:.4f}, the row says {row['escalated_robust_acc']:.4f}")
    return mask


def escalate_command(row: dict) -> str:
    """The one command that escalates a flagged row (``symbench bench ... --escalate``)."""
    parts = ["symbench", "bench", "--model", row["model"], "--suite", row["suite"]]
    if row.get("n"):
        parts += ["--n", str(row["n"])]
    if row.get("eps_override"):
        parts += ["--eps"] + [f"{t}={','.join(f'{e:g}' for e in es)}" for t, es in row["eps_override"].items()]
    return " ".join(parts + ["--escalate"])
