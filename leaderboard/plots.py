"""Plots (matplotlib, Agg): accuracy vs eps per depth, CLEVER score distributions, accuracy per corruption."""
from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

from symbench.bench.run.store import process_umask
from symbench.leaderboard.cards import _depth
from symbench.leaderboard.rows import _is_clever, _is_corruption, curve_basis, curve_rows, fgsm_alone
from symbench.leaderboard.sections import corruption_summary, reference_picks

log = logging.getLogger("symbench.leaderboard")

# Every model on a plot gets its own colour (tab10, then tab20's light shades); adversarially
# trained models (their card's recipe has `adv`) are dashed, plain baselines drawn thicker. The
# seed's claims are hollow diamonds in their model's colour, RobustBench's reported numbers stars.
PLOT_PREFIXES = ("robust_vs_eps_", "clever", "corruptions", "model_", "board_", "rotation_curve")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "symbench"})
    return plt


def _save(fig, path: Path) -> None:
    """Write the figure atomically: savefig to a temp file in the same folder, then os.replace.

    A build killed mid-plot once left a 0-byte PNG; now the old plot stays until the new one is
    complete. The temp file is ``.<name>.XXXX.tmp`` (git-ignored); an existing plot keeps its mode, a
    new one gets the umask's (not mkstemp's 0600). No "Software" metadata, so identical rows give
    byte-identical PNGs across rebuilds.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~process_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _is_at(name: str, cards: dict) -> bool:
    return bool((cards.get(name) or {}).get("adversarially_trained"))


def _line_styles(models: list[str], cards: dict, plt) -> dict[str, dict]:
    """A distinct colour per model (so a claim marker in that colour names its model); AT models dashed."""
    colors = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])
    out = {}
    for i, m in enumerate(models):
        style = dict(color=colors[i % len(colors)], lw=1.5)
        if _is_at(m, cards):
            style["ls"] = "--"
        if (cards.get(m) or {}).get("family") in ("baseline", "baseline_at"):
            style["lw"] = 2.2
        out[m] = style
    return out


def plot_robust_vs_eps(rows: list[dict], refs: list[dict], claims: dict, cards: dict, out_dir: Path) -> list[Path]:
    """Seed Figures 1-2 redone: accuracy vs eps per model, one figure per depth.

    Left panel FGSM alone, right panel the per-example worst case (``curve_rows``: paper_worst's FGSM, PGD-40,
    APGD-CE and APGD-T where measured, else the seed's FGSM + PGD-40, hollow where that is only an upper bound). Each figure
    also shows the adversarially trained models, RobustBench's reported 8/255 references (stars) and
    the seed paper's claims (hollow diamonds in the colour of the model they are claimed for).
    """
    curves = curve_rows(rows)
    if not curves:
        log.info("no rows of suite 'paper' or 'paper_worst' yet: skipping the accuracy-vs-eps plots")
        return []
    plt = _plt()
    from matplotlib.lines import Line2D

    by_model = {m: list(rs.values()) for m, rs in curves.items()}
    groups: dict[str, list[str]] = {}
    for m in sorted(by_model):
        d = _depth(m, cards)
        groups.setdefault(f"{d}layer" if d else "other", []).append(m)
    picks = [(role, r) for role, r in reference_picks(refs) if r["threat"] == "linf"]
    claim_by_model: dict[str, list[dict]] = {}
    for c in claims.get("claims", []):
        claim_by_model.setdefault(c["model"], []).append(c)
    sources = claims.get("sources", {})
    paths = []

    def depth_order(item):  # 4layer, 10layer, ..., other
        return (item[0] == "other", int(item[0].removesuffix("layer")) if item[0] != "other" else 0)

    for gname, models in sorted(groups.items(), key=depth_order):
        shown = list(models) + [m for m in sorted(by_model) if _is_at(m, cards) and m not in models]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        styles = _line_styles(shown, cards, plt)
        handles = []
        for m in shown:
            rs = sorted(by_model[m], key=lambda r: r["eps"])
            style = styles[m]
            eps = [r["eps"] for r in rs]
            f = [fgsm_alone(r) for r in rs]
            if any(v is not None for v in f):
                axes[0].plot([e for e, v in zip(eps, f) if v is not None], [100 * v for v in f if v is not None],
                             marker="o", ms=3, **style)
            axes[1].plot(eps, [100 * r["robust_acc"] for r in rs], marker="o", ms=3, **style)
            upper = [r for r in rs if curve_basis(r) == "seed"]  # FGSM + PGD-40 only: an upper bound, drawn hollow
            if upper:
                axes[1].plot([r["eps"] for r in upper], [100 * r["robust_acc"] for r in upper], marker="o", ms=6,
                             ls="none", mfc="white", mec=style["color"])
            label = m + (" (AT)" if _is_at(m, cards) else "") + ("" if m in models else ", other depth")
            handles.append(Line2D([], [], marker="o", ms=3, label=label, **style))
            cs = claim_by_model.get(m, [])
            for c in cs:
                kw = dict(marker="D", mfc="none", mec=style["color"], mew=1.4, ms=7, ls="none")
                axes[0].plot([c["eps"]], [c["fgsm"]], **kw)
                axes[1].plot([c["eps"]], [c["pgd"]], **kw)
            if cs:
                tables = "/".join(dict.fromkeys(sources.get(c["source"], {}).get("table", c["source"]) for c in cs))
                handles.append(Line2D([], [], marker="D", mfc="none", mec=style["color"], mew=1.4, ms=7, ls="none",
                                      label=f"seed paper's claim for {m} ({tables}; left FGSM, right PGD)"))
        for j, (role, r) in enumerate(picks):
            color = ["tab:green", "tab:olive", "tab:red"][j % 3]
            axes[1].plot([r["eps"]], [100 * r["robust_acc"]], marker="*", ms=11, ls="none", color=color)
            handles.append(Line2D([], [], marker="*", ms=11, ls="none", color=color,
                                  label=f"RobustBench {r['model'].split(':')[-1]} ({role}; AutoAttack, reported)"))
        n = sorted({r["n"] for m in shown for r in by_model[m]})
        handles.insert(0, Line2D([], [], marker="o", ms=3, color="0.3", ls="-",
                                 label=f"dots: measured here (n={'/'.join(map(str, n))}); dashed line: adversarially trained"))
        handles.insert(1, Line2D([], [], marker="o", ms=6, mfc="white", mec="0.3", ls="none",
                                 label="hollow: seed protocol only (FGSM + PGD-40), an upper bound"))
        axes[0].set_title("FGSM alone")
        axes[1].set_title("worst case per example (FGSM, PGD-40, APGD-CE, APGD-T)")
        for ax in axes:
            ax.set_xlabel("eps (Linf, [0,1] pixel scale)")
            ax.set_ylim(0, 100)
        axes[0].set_ylabel("accuracy (%)")
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7.5, frameon=False)
        fig.suptitle(f"CIFAR-10, suites paper_worst / paper, {gname.replace('layer', '-layer models')} (n={'/'.join(map(str, n))})")
        path = out_dir / f"robust_vs_eps_{gname}.png"
        _save(fig, path)
        paths.append(path)
    return paths


def plot_model_curves(model: str, rows: list[dict], claims: dict, out_dir: Path) -> Path | None:
    """One model's accuracy vs eps (suite `paper`): FGSM alone and the worst case, each with its 95% band."""
    from symbench.bench.run.stats import accuracy_interval

    rs = sorted(curve_rows([r for r in rows if r["model"] == model]).get(model, {}).values(), key=lambda r: r["eps"])
    if not rs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    eps = [r["eps"] for r in rs]
    for label, values, color in (("FGSM alone", [fgsm_alone(r) for r in rs], "tab:blue"),
                                 ("worst case (FGSM, PGD-40, APGD where run)", [r["robust_acc"] for r in rs], "tab:red")):
        pts = [(e, v, r["n"]) for e, v, r in zip(eps, values, rs) if v is not None]
        if not pts:
            continue
        ci = [accuracy_interval(v, n) for _, v, n in pts]
        ax.fill_between([p[0] for p in pts], [100 * c[0] for c in ci], [100 * c[1] for c in ci], color=color,
                        alpha=0.18, lw=0, label=f"{label}: 95% Wilson band")
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", ms=4, color=color,
                label=f"{label} (dots: measured, n={'/'.join(sorted({str(p[2]) for p in pts}))})")
    cs = [c for c in claims.get("claims", []) if c["model"] == model]
    if cs:
        ax.plot([c["eps"] for c in cs], [c["fgsm"] for c in cs], marker="D", mfc="none", mec="tab:blue", ms=7,
                ls="none", label="seed paper's FGSM claim")
        ax.plot([c["eps"] for c in cs], [c["pgd"] for c in cs], marker="D", mfc="none", mec="tab:red", ms=7,
                ls="none", label="seed paper's PGD claim")
    ax.set_xlabel("eps (Linf, [0,1] pixel scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{model}: accuracy vs eps (suite paper)")
    ax.legend(fontsize=7, loc="upper right")
    path = out_dir / f"model_{model}.png"
    _save(fig, path)
    return path


def plot_clever(rows: list[dict], out_dir: Path) -> list[Path]:
    """CLEVER score distributions per model, one panel per norm (boxes from the rows' quartiles)."""
    rs = [r for r in rows if _is_clever(r) and (r["clever"] or {}).get("median") is not None]
    if not rs:
        log.info("no CLEVER rows yet: skipping the CLEVER plot")
        return []
    plt = _plt()
    norms = sorted({r["threat"] for r in rs})
    n_models = len({r["model"] for r in rs})
    # horizontal boxes, one model a line, highest median on top: readable for 14 models as for 3
    fig, axes = plt.subplots(1, len(norms), figsize=(6.5 * len(norms), 0.32 * n_models + 1.8), squeeze=False,
                             layout="constrained")
    for ax, norm in zip(axes[0], norms):
        nr = sorted([r for r in rs if r["threat"] == norm], key=lambda r: (r["clever"]["median"], r["model"]))
        stats = [{"med": r["clever"]["median"], "q1": r["clever"]["q1"], "q3": r["clever"]["q3"],
                  "whislo": r["clever"]["min"], "whishi": r["clever"]["max"], "mean": r["clever"].get("mean"),
                  "label": f"{r['model']} (n={r['clever']['n_scored']})", "fliers": []} for r in nr]
        ax.bxp(stats, showmeans=all(s["mean"] is not None for s in stats), orientation="horizontal")
        ax.set_title(f"CLEVER score, {norm} (radius {nr[0]['eps']:g})")
        ax.set_xlabel("CLEVER score (estimated min. distortion): box q1-q3, line median, triangle mean, whiskers min-max")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("CLEVER (untargeted, ART clever_u): an estimate, not a certificate")
    path = out_dir / "clever.png"
    _save(fig, path)
    return [path]


def plot_corruptions(rows: list[dict], out_dir: Path) -> list[Path]:
    """Heatmap: model x corruption, accuracy (mean over severities), with the clean and mean columns.

    A grid with the numbers written in, rather than grouped bars: 14 models x 19 corruptions made a bar
    chart 3,700 px wide that no one could read.
    """
    names, acc, clean = corruption_summary([r for r in rows if _is_corruption(r)])
    if not names:
        log.info("no corruption rows yet: skipping the corruption plot")
        return []
    plt = _plt()
    models = sorted(acc, key=lambda m: (-acc[m].get("mean/all", float("-inf")), m))
    cols = ["clean"] + names + ["mean/all"]
    grid = [[100 * (clean if c == "clean" else acc[m]).get(m if c == "clean" else c, float("nan")) for c in cols]
            for m in models]
    fig, ax = plt.subplots(figsize=(0.5 * len(cols) + 3, 0.32 * len(models) + 1.6))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i, line in enumerate(grid):
        for j, v in enumerate(line):
            if v == v:  # not NaN
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.grid(False)
    for j in (0.5, len(cols) - 1.5):  # set the clean and mean columns apart
        ax.axvline(j, color="white", lw=2)
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="accuracy (%)")
    ax.set_title("CIFAR-10-C accuracy per corruption, mean over severities 1-5 (suite corruptions); sorted by mean")
    path = out_dir / "corruptions.png"
    _save(fig, path)
    return [path]


def plot_threat_board(records: list[dict], title: str, path: Path) -> Path | None:
    """A threat board as a forest plot: each model's robust accuracy with its 95% Wilson interval.

    Overlapping bars are the statistical ties the rank bands report; RobustBench's reported rows
    (the ones the board shows by default) are grey squares for scale.
    """
    measured = [r for r in records if r.get("kind") == "measured"]
    if not measured:
        return None
    plt = _plt()
    shown = sorted((r for r in records if r.get("robust_low") is not None), key=lambda r: r["robust_acc"])
    fig, ax = plt.subplots(figsize=(8.5, 0.26 * len(shown) + 1.5))
    for i, r in enumerate(shown):
        lo, hi = 100 * r["robust_low"], 100 * r["robust_high"]
        if r.get("kind") == "reported":
            ax.plot([lo, hi], [i, i], color="0.75", lw=2, solid_capstyle="butt")
            ax.plot([100 * r["robust_acc"]], [i], marker="s", ms=5, mfc="white", mec="0.5", ls="none")
        else:
            color = "tab:red" if r.get("adversarially_trained") else "tab:blue"
            ax.plot([lo, hi], [i, i], color=color, lw=2.5, alpha=0.45, solid_capstyle="butt")
            ax.plot([100 * r["robust_acc"]], [i], marker="o", ms=5, color=color, ls="none")
    labels = [r["model"].split(":", 1)[-1] + (f"  (n={r['n']}, {r['suite']})" if r.get("kind") == "measured"
                                              else "  (RobustBench, reported)") for r in shown]
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), shown):
        if r.get("kind") == "reported":
            tick.set_color("0.5")
    ax.set_xlim(-1, 100)
    ax.set_xlabel("robust accuracy (%)")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker="o", color="tab:red", lw=2.5, label="adversarially trained (dot: measured)"),
                       Line2D([], [], marker="o", color="tab:blue", lw=2.5, label="not adversarially trained"),
                       Line2D([], [], marker="s", mfc="white", mec="0.5", color="0.75", lw=2,
                              label="RobustBench, reported (not measured here)")],
              fontsize=7, loc="lower right", title="bar: 95% Wilson interval; overlapping bars = tied",
              title_fontsize=7)
    ax.set_title(title)
    _save(fig, path)
    return path


def plot_rotation_curve(rows: list[dict], cards: dict, out_dir: Path) -> list[Path]:
    """Worst-case accuracy within ±θ vs θ (suite ``rotation_curve``, threat ``rotation``), one line per model."""
    from symbench.leaderboard.board_spatial import rotation_rows

    rot = rotation_rows(rows)
    if not rot:
        log.info("no rotation_curve rows yet: skipping the accuracy-vs-angle plot")
        return []
    plt = _plt()
    models = sorted(rot)
    styles = _line_styles(models, cards, plt)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for m in models:
        got = sorted(rot[m].items())
        ns = sorted({r["n"] for _, r in got})
        ax.plot([t for t, _ in got], [100 * r["robust_acc"] for _, r in got], marker="o", ms=3,
                label=m + (" (AT)" if _is_at(m, cards) else "") + f" (n={'/'.join(map(str, ns))})", **styles[m])
    thetas = sorted({t for got in rot.values() for t in got})
    ax.set_xscale("symlog", linthresh=15)
    ax.set_xticks(thetas, [f"{t:g}" for t in thetas])
    ax.set_xlabel("θ: every whole-degree rotation within ±θ (degrees)")
    ax.set_ylabel("worst-case accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("CIFAR-10, suite rotation_curve: worst-case accuracy over rotations within ±θ (θ = 0: clean)")
    path = out_dir / "rotation_curve.png"
    _save(fig, path)
    return [path]
