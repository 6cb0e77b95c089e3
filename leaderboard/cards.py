"""Model cards: the descriptive facts shown beside each model; every number beside them comes from rows."""
from __future__ import annotations

import logging
import re

from symbench.leaderboard.tables import Cell, Col, Table, num

log = logging.getLogger("symbench.leaderboard")


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
        if rec is None:
            training = ""
        elif rec.adv:
            training = f"{rec.adv.upper()}-{rec.adv_steps} adversarial training, eps {rec.adv_eps:.4g}, {rec.epochs} epochs"
        else:
            training = f"standard training, {rec.epochs} epochs ({rec.augment})"
        flags = [f for f in ("randomized", "test_time_opt") if getattr(c, f, False)]
        if getattr(c, "n_forward_passes", 1) != 1:
            flags.append(f"{c.n_forward_passes} forward passes")
        out[n] = {"family": c.family, "group": c.group, "depth": c.depth, "description": c.description,
                  "paper": c.paper, "source": c.source, "training": training, "flags": ", ".join(flags),
                  "adversarially_trained": bool(rec is not None and rec.adv)}
    return out


def _depth(name: str, cards: dict) -> int | None:
    d = (cards.get(name) or {}).get("depth")
    if d:
        return int(d)
    m = re.search(r"(\d+)(?:_[a-z]+)?$", name)
    return int(m.group(1)) if m else None


def cards_table(names: list[str], cards: dict, rows: list[dict]) -> Table:
    t = Table("cards", [Col("model"), Col("family"), Col("group"), Col("depth", True), Col("params", True),
                        Col("training"), Col("checkpoint sha256"), Col("flags"), Col("source"), Col("description")])
    for n in names:
        c = cards.get(n) or {}
        rs = [r for r in rows if r["model"] == n]
        params = next((r.get("params") for r in reversed(rs) if r.get("params")), None)
        shas = sorted({(r.get("ckpt_sha256") or "")[:12] for r in rs if r.get("ckpt_sha256")})
        fam = c.get("family") or next((r.get("family") for r in rs if r.get("family")), "") or ""
        grp = c.get("group") or next((r.get("group") for r in rs if r.get("group")), "") or ""
        desc = c.get("description") or ""
        if c.get("paper"):
            desc += f" ({c['paper']})"
        t.add([Cell(n), Cell(fam), Cell(grp), num(c.get("depth"), "{:d}"),
               Cell(f"{params:,}" if params else "–", params if params else float("nan")),
               Cell(c.get("training") or "–"), Cell(", ".join(shas) or "–"), Cell(c.get("flags") or "–"),
               Cell(c.get("source") or next((r.get("source") for r in rs if r.get("source")), "") or ""),
               Cell(desc or "–")])
    return t
