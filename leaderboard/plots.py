"""Plots (matplotlib, Agg): accuracy vs eps per depth, CLEVER score distributions, accuracy per corruption."""
from __future__ import annotations

import logging
from pathlib import Path

from symbench.leaderboard.cards import _depth
from symbench.leaderboard.rows import _is_attack, _is_clever, _is_corruption, fgsm_alone
from symbench.leaderboard.sections import corruption_summary, reference_picks

log = logging.getLogger("symbench.leaderboard")

# Adversarially trained models (their card's recipe has `adv`) are black references on every depth's
# plot, told apart by dash; plain baselines are grey; the symmetry-aware models take the other colours
# (tab10 without its grey), so no two lines match.
AT_DASHES = ("--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
BASELINE_STYLE = dict(color="0.45", lw=1.6)
PLOT_PREFIXES = ("robust_vs_eps_", "clever", "corruptions")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "symbench"})
    return plt


def _save(fig, path: Path) -> None:
    # no "Software" metadata: identical rows give byte-identical PNGs across rebuilds
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def _is_at(name: str, cards: dict) -> bool:
    return bool((cards.get(name) or {}).get("adversarially_trained"))


def _line_styles(models: list[str], cards: dict, plt) -> dict[str, dict]:
    """A distinct line style per model: AT plain CNNs black, plain baselines grey, the rest in colour
    (dashed when adversarially trained)."""
    colors = [c for c in plt.get_cmap("tab10").colors if len(set(c)) > 1]  # tab10 minus its grey
    out, n_at, n_other = {}, 0, 0
    for m in models:
        if _is_at(m, cards) and (cards.get(m) or {}).get("family") == "baseline_at":
            out[m] = dict(color="black", ls=AT_DASHES[n_at % len(AT_DASHES)], lw=1.6)
            n_at += 1
        elif _is_at(m, cards):
            out[m] = dict(color=colors[n_other % len(colors)], ls="--", lw=1.6)
            n_other += 1
        elif (cards.get(m) or {}).get("family") == "baseline":
            out[m] = dict(BASELINE_STYLE)
        else:
            out[m] = dict(color=colors[n_other % len(colors)], lw=1.4)
            n_other += 1
    return out


def plot_robust_vs_eps(rows: list[dict], refs: list[dict], claims: dict, cards: dict, out_dir: Path) -> list[Path]:
    """Seed Figures 1-2 redone: accuracy vs eps per model (`paper` suite), one figure per depth.

    Left panel FGSM alone, right panel the per-example worst case over FGSM and PGD. Each figure
    also shows the adversarially trained baseline, RobustBench's reported 8/255 references and the
    seed paper's claims (hollow markers) for the models in it.
    """
    paper = [r for r in rows if r["suite"] == "paper" and r["threat"] == "linf" and _is_attack(r)]
    if not paper:
        log.info("no rows of suite 'paper' yet: skipping the accuracy-vs-eps plots")
        return []
    plt = _plt()
    by_model: dict[str, list[dict]] = {}
    for r in paper:
        by_model.setdefault(r["model"], []).append(r)
    groups: dict[str, list[str]] = {}
    for m in sorted(by_model):
        d = _depth(m, cards)
        groups.setdefault(f"{d}layer" if d else "other", []).append(m)
    picks = [(role, r) for role, r in reference_picks(refs) if r["threat"] == "linf"]
    claim_by_model: dict[str, list[dict]] = {}
    for c in claims.get("claims", []):
        claim_by_model.setdefault(c["model"], []).append(c)
    paths = []
    def depth_order(item):  # 4layer, 10layer, ..., other
        return (item[0] == "other", int(item[0].removesuffix("layer")) if item[0] != "other" else 0)

    for gname, models in sorted(groups.items(), key=depth_order):
        shown = list(models) + [m for m in sorted(by_model) if _is_at(m, cards) and m not in models]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        styles = _line_styles(shown, cards, plt)
        for m in shown:
            rs = sorted(by_model[m], key=lambda r: r["eps"])
            style = styles[m]
            eps = [r["eps"] for r in rs]
            f = [fgsm_alone(r) for r in rs]
            if any(v is not None for v in f):
                axes[0].plot([e for e, v in zip(eps, f) if v is not None], [100 * v for v in f if v is not None],
                             marker="o", ms=3, label=m, **style)
            axes[1].plot(eps, [100 * r["robust_acc"] for r in rs], marker="o", ms=3, label=m, **style)
            for c in claim_by_model.get(m, []):
                kw = dict(marker="D", mfc="none", mec=style["color"], ms=6, ls="none")
                axes[0].plot([c["eps"]], [c["fgsm"]], **kw)
                axes[1].plot([c["eps"]], [c["pgd"]], **kw)
        for j, (role, r) in enumerate(picks):
            axes[1].plot([r["eps"]], [100 * r["robust_acc"]], marker="*", ms=11, ls="none",
                         color=["tab:green", "tab:olive", "tab:red"][j % 3],
                         label=f"RobustBench {r['model'].split(':')[-1]} ({role}, AutoAttack, reported)")
        axes[1].plot([], [], marker="D", mfc="none", mec="0.3", ls="none", label="seed paper's claim (Tables 2, 4)")
        axes[0].set_title("FGSM alone")
        axes[1].set_title("worst case per example (FGSM, PGD-40)")
        for ax in axes:
            ax.set_xlabel("eps (Linf, [0,1] pixel scale)")
            ax.set_ylim(0, 100)
        axes[0].set_ylabel("accuracy (%)")
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7.5, frameon=False)
        n = sorted({r["n"] for m in shown for r in by_model[m]})
        fig.suptitle(f"CIFAR-10, suite paper, {gname.replace('layer', '-layer models')} (n={'/'.join(map(str, n))})")
        path = out_dir / f"robust_vs_eps_{gname}.png"
        _save(fig, path)
        paths.append(path)
    return paths


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
        ax.set_xlabel("CLEVER score (estimated min. distortion)")
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
