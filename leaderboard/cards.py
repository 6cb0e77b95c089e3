"""Model cards: the descriptive facts shown beside each model; every number beside them comes from rows."""
from __future__ import annotations

import logging
import re

from symbench.leaderboard.tables import Cell, Col, Table, num

log = logging.getLogger("symbench.leaderboard")


def _recipe_text(rec) -> str:
    if rec is None:
        return ""
    if rec.adv:
        return (f"{rec.adv.upper()}-{rec.adv_steps} adversarial training at Linf eps {rec.adv_eps:.4g}, "
                f"{rec.epochs} epochs, batch {rec.batch_size}, lr {rec.lr:g}, wd {rec.weight_decay:g} ({rec.augment})")
    return (f"standard training, {rec.epochs} epochs, batch {rec.batch_size}, lr {rec.lr:g}, wd {rec.weight_decay:g} "
            f"({rec.augment})")


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def model_cards(names: list[str]) -> dict[str, dict]:
    """Card facts for each model name, from the registry when it knows the model (else empty).

    Only descriptive fields are taken from cards; every number shown beside them comes from rows.
    """
    out = {}
    try:
        from symbench.models import get_card
    except ImportError:  # pragma: no cover - the registry ships with symbench
        return {n: {} for n in names}
    for n in names:
        try:
            c = get_card(n)
        except Exception as err:  # unknown (e.g. robustbench:<Name>) or a broken third-party card
            log.debug("no card for %s: %s", n, err)
            out[n] = {}
            continue
        rec = getattr(c, "recipe", None)
        flags = [f for f in ("randomized", "test_time_opt") if getattr(c, f, False)]
        if getattr(c, "n_forward_passes", 1) != 1:
            flags.append(f"{c.n_forward_passes} forward passes")
        weights = c.url or (f"symbench/models/checkpoints/{c.checkpoint}" if c.checkpoint else "")
        out[n] = {"family": c.family, "group": c.group, "depth": c.depth, "description": c.description,
                  "paper": c.paper, "source": c.source, "training": _recipe_text(rec), "flags": ", ".join(flags),
                  "adversarially_trained": bool(rec is not None and rec.adv), "params": c.params,
                  "sha256": c.sha256 or "", "weights": weights,
                  "train_time": (_duration(c.train_seconds) + (f" on {c.train_device}" if c.train_device else ""))
                  if c.train_seconds else "",
                  "card_clean_acc": c.clean_acc, "notes": c.notes}
    return out


def _depth(name: str, cards: dict) -> int | None:
    d = (cards.get(name) or {}).get("depth")
    if d:
        return int(d)
    m = re.search(r"(\d+)(?:_[a-z]+)?$", name)
    return int(m.group(1)) if m else None


def model_params(name: str, cards: dict, rows: list[dict]) -> int | None:
    """Parameter count: the rows' (measured at run time), else the card's."""
    return next((r.get("params") for r in reversed(rows) if r["model"] == name and r.get("params")),
                (cards.get(name) or {}).get("params"))


def cards_table(names: list[str], cards: dict, rows: list[dict]) -> Table:
    t = Table("cards", [Col("model"), Col("family", narrow=False), Col("group"), Col("AT"),
                        Col("depth", True, narrow=False), Col("params", True, narrow=False),
                        Col("training", narrow=False), Col("training time", narrow=False),
                        Col("checkpoint sha256", narrow=False), Col("flags", narrow=False)])
    for n in names:
        c = cards.get(n) or {}
        rs = [r for r in rows if r["model"] == n]
        params = model_params(n, cards, rows)
        fam = c.get("family") or next((r.get("family") for r in rs if r.get("family")), "") or ""
        grp = c.get("group") or next((r.get("group") for r in rs if r.get("group")), "") or ""
        sha = c.get("sha256") or next((r.get("ckpt_sha256") for r in reversed(rs) if r.get("ckpt_sha256")), "") or ""
        at = "AT" if c.get("adversarially_trained") else "–"
        t.add([Cell(n, href=f"models/{re.sub(r'[^A-Za-z0-9_.+-]', '_', n)}.html", title=c.get("description") or ""), Cell(fam), Cell(grp), Cell(at),
               num(c.get("depth"), "{:d}"), Cell(f"{params:,}" if params else "–", params if params else float("nan")),
               Cell(c.get("training") or "–"), Cell(c.get("train_time") or "–"), Cell(sha[:12] or "–", title=sha),
               Cell(c.get("flags") or "–")],
              attrs={"model": n, "family": fam, "group": grp, "at": "yes" if at == "AT" else "no"},
              record={"model": n, "family": fam, "group": grp, "adversarially_trained": at == "AT",
                      "depth": c.get("depth"), "params": params, "training": c.get("training"),
                      "train_time": c.get("train_time"), "sha256": sha, "weights": c.get("weights"),
                      "flags": c.get("flags")})
    return t
