"""The README's model table, generated from the cards (never typed by hand)."""
from __future__ import annotations

import re
from pathlib import Path

from symbench.models.registry import get_card, list_models

BEGIN, END = "<!-- models-table:begin -->", "<!-- models-table:end -->"


def models_table() -> str:
    """Markdown table: model, group, params, training time here, clean accuracy (full CIFAR-10 test set)."""
    from symbench.models import create_model

    lines = ["| model | family | group | depth | params | recipe | train time | clean acc (10k test) | sha256 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in list_models():
        card = get_card(name)
        if card.source != "symbench":
            continue
        params = card.params or sum(p.numel() for p in create_model(name).parameters())
        r = card.recipe
        recipe = f"{r.epochs} ep" + (f", {r.adv} AT eps {r.adv_eps * 255:.0f}/255" if r.adv else "")
        recipe += f", {r.augment}" if r.augment != "crop+flip" else ""  # the default augmentation goes unsaid
        t = f"{card.train_seconds / 60:.0f} min ({card.train_device})" if card.train_seconds else "—"
        acc = f"{card.clean_acc:.2%}" if card.clean_acc is not None else "not trained yet"
        if card.notes and card.clean_acc is not None:
            acc += " ⚠"
        sha = f"`{card.sha256[:12]}`" if card.sha256 else "—"
        lines.append(f"| `{name}` | {card.family} | {card.group} | {card.depth} | {params:,} | {recipe} | {t} | {acc} | {sha} |")
    notes = [f"- ⚠ `{n}`: {get_card(n).notes}" for n in list_models() if get_card(n).notes and get_card(n).clean_acc]
    return "\n".join(lines + ([""] + notes if notes else []))


def update_readme(path: str | Path = "README.md") -> bool:
    """Rewrite the table between the markers; returns True if the file changed."""
    path = Path(path)
    text = path.read_text()
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), BEGIN + "\n" + models_table() + "\n" + END, text,
                 flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text
