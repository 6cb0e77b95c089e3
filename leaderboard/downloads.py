"""The boards as files a reader can take away: ``data/<board>.csv`` and ``.json`` (every value behind a table)."""
from __future__ import annotations

import json

from symbench.leaderboard.tables import Table


def _json_default(v):
    return str(v)


def board_downloads(boards: list, claims: Table, cards: Table) -> dict[str, str]:
    """file name under data/ → content: every board (and the claims and model tables) as CSV and JSON."""
    import pandas
    out = {}
    # a board's download holds its ranked rows and the ones it lists apart (field "listed" says which)
    tables = [(b.id, [b.table] + [t for _, _, t in b.extra if t.id.startswith(b.id + "-")]) for b in boards]
    # a table below a board with a shape of its own (``<board>_<what>``: the angle curve, spatial + Linf) is a file too
    tables += [(t.id, [t]) for b in boards for _, _, t in b.extra if t.id.startswith(b.id + "_")]
    for tid, ts in tables + [("claims", [claims]), ("models", [cards])]:
        recs = [r.record for t in ts for r in t.sorted_rows()]
        out[f"{tid}.json"] = json.dumps(recs, indent=1, default=_json_default, allow_nan=False) + "\n"
        df = pandas.DataFrame(recs)
        for col in df.columns:  # lists and dicts as JSON text, so a spreadsheet shows them whole
            df[col] = df[col].map(lambda v: json.dumps(v, default=_json_default) if isinstance(v, (list, dict)) else v)
        out[f"{tid}.csv"] = df.to_csv(index=False, lineterminator="\n")
    return out
