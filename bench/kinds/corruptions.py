"""CIFAR-10-C (Hendrycks & Dietterich 2019): loading, a generated fallback, and the suite kinds
``corruptions`` (accuracy per corruption and severity) and ``corrupted_adv`` (FGSM/PGD on corrupted
inputs, the seed paper's Table 1).

Where corrupted images come from (``source`` option), recorded in every row's ``data_source``:

- ``official``: ``<dir>/CIFAR-10-C/<corruption>.npy`` (50000,32,32,3) uint8 = severities 1..5 x the
  10000 test images, plus ``labels.npy``; ``<dir>`` is the ``cifar10c_dir`` option, ``$SYMBENCH_CIFAR10C``,
  ``$SYMBENCH_DATA`` or the directory the clean CIFAR-10 came from.
- ``robustbench``: ``robustbench.data.load_cifar10c``, which downloads the official tar from Zenodo
  when it is missing (needs a network; never used unless asked for).
- ``generated``: corruptions applied here to the clean test images, seeded per image and cached on
  disk. They use CIFAR-10-C's own severity parameters (``make_cifar_c.py`` in hendrycks/robustness,
  smaller than the ImageNet-C ones the ``imagecorruptions`` package hard-codes) and imagecorruptions'
  helpers (defocus disk, numpy motion blur, frost textures). Known differences from the official
  files: motion_blur and snow use imagecorruptions' numpy motion blur instead of ImageMagick's; the
  two blurs imagecorruptions breaks on scikit-image >= 0.25 (``gaussian(multichannel=)``) call
  ``gaussian(channel_axis=-1)``; fog's plasma fractal is re-implemented because imagecorruptions'
  uses ``np.float_`` (gone in numpy 2). Generated numbers are never mixed with official ones: their
  ``data_source`` starts with ``generated:imagecorruptions``.
- ``auto`` (default): official when found, else generated.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.data import ImageData, cache_dir as user_cache_dir
from symbench.bench.kinds.corruption_ops import (ALL, COMMON, CORRUPTIONS, EXTRA, GENERATOR, SEVERITIES,  # noqa: F401
                                                 corrupt_image, corrupt_images)
from symbench.bench.kinds.corruption_sources import (_generator_tag, corrupted, find_official,  # noqa: F401
                                                     generated, import_robustbench, is_cifar10_test, load_official,
                                                     load_robustbench, official_dirs, to_uint8)
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome, check_model_output, defense_settings, model_fingerprint, run_suite
from symbench.bench.run.store import Store, run_key
from symbench.bench.suites import Suite, register_suite_kind

log = logging.getLogger(__name__)


def resolve_source(suite: Suite, data: ImageData) -> tuple[str, Path | None]:
    """The suite's ``source`` option with "auto" made concrete, and the official directory if any."""
    source = str(suite.option("source", "auto"))
    extra = [suite.option("cifar10c_dir")] if suite.option("cifar10c_dir") else []
    found = find_official(data, extra) if is_cifar10_test(data) else None
    if source == "auto":
        source = "official" if found else "generated"
        if source == "generated":
            log.warning("official CIFAR-10-C not found (looked in %s); generating corruptions with imagecorruptions "
                        "helpers and CIFAR-10-C parameters (rows say data_source=generated:...)",
                        ", ".join(str(d) for d in official_dirs(data, extra)) or "nowhere")
    if source == "official" and found is None:
        raise FileNotFoundError("CIFAR-10-C not found: put <corruption>.npy and labels.npy in DIR/CIFAR-10-C and pass "
                                "--data-dir DIR, set SYMBENCH_CIFAR10C, or use source = 'generated'")
    if source not in ("official", "robustbench", "generated"):
        raise ValueError(f"suite {suite.name!r}: source must be auto/official/robustbench/generated, got {source!r}")
    return source, found


def _corruption_list(suite: Suite) -> tuple[tuple[str, ...], tuple[int, ...]]:
    names = tuple(suite.option("corruptions", ALL))
    bad = [c for c in names if c not in CORRUPTIONS]
    if bad:
        raise ValueError(f"suite {suite.name!r}: unknown corruption(s) {bad}; known: {', '.join(ALL)}")
    sev = tuple(int(s) for s in suite.option("severities", SEVERITIES))
    if any(s not in SEVERITIES for s in sev):
        raise ValueError(f"suite {suite.name!r}: severities must be in 1..5, got {sev}")
    return names, sev


def _combined(parts: list[ImageData], source: str) -> SimpleNamespace:
    """A data stand-in for summary rows: one hash over the parts' hashes."""
    h = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
    return SimpleNamespace(source=source, sha256=h, split=parts[0].split if parts else "test")


def _family_source(source: str, suite: Suite, found: Path | None) -> str:
    if source == "generated":
        return _generator_tag(suite.seed)
    return f"CIFAR-10-C:{found}" if source == "official" else f"robustbench:{suite.option('robustbench_dir', user_cache_dir())}"


# ----------------------------------------------------------------------------------------------------------------
# Suite kind "corruptions"
# ----------------------------------------------------------------------------------------------------------------

@register_suite_kind("corruptions")
def run_corruptions(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str,
                    store_root=None, device="cpu", progress: bool = True, **_) -> list[dict]:
    """Accuracy on every (corruption, severity); rows per pair, per corruption (mean over severities), and
    overall means (all corruptions run, and the 15 standard ones when all were run).

    Rows: threat "corruptions", eps 0, ``clean_acc`` on the clean images, ``robust_acc`` and
    ``corruption_acc`` on the corrupted ones, ``variant`` "<corruption>/<severity>", "<corruption>/mean",
    "mean/all" or "mean/common15".
    """
    names, sevs = _corruption_list(suite)
    source, found = resolve_source(suite, data)
    card = getattr(model, "card", None)
    num_classes = getattr(card, "num_classes", 10)
    model = model.to(device).eval()
    check_model_output(model, data.x[:2].to(device), num_classes)  # the data stays on the CPU, batches move
    fp = model_fingerprint(model)
    key = run_key(kind="corruptions", model=fp, suite=suite.sha256, data=data.sha256, n=len(data), seed=suite.seed,
                  source=source, generator=GENERATOR, **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "n": len(data),
                      "kind": "corruptions", "source": source})
    bs = suite.batch_size

    def predict(x):
        with torch.no_grad():
            return torch.cat([model(x[s:s + bs].to(device)).argmax(1).cpu() for s in range(0, len(x), bs)])

    rec = store.get("clean", 0)
    if rec is None:
        rec = {"correct": (predict(data.x) == data.y).tolist()}
        store.put("clean", 0, rec)
    clean = torch.tensor(rec["correct"], dtype=torch.bool)

    opts = dict(source=source, seed=suite.seed, official_dir=found, rb_dir=suite.option("robustbench_dir"),
                cache_dir=suite.option("cache_dir"))
    rows, per_name = [], {}
    pairs = [(c, s) for c in names for s in sevs]
    for c, s in tqdm(pairs, desc=f"{model_name} corruptions", disable=not progress, leave=False):
        cdata = corrupted(data, c, s, **opts)
        rec = store.get(f"{c}_{s}", 0)
        if rec is None or rec.get("data_sha256") != cdata.sha256:
            t0 = time.perf_counter()
            correct = (predict(cdata.x) == cdata.y).tolist()
            rec = {"correct": correct, "data_sha256": cdata.sha256, "n_forward": len(correct),
                   "seconds": time.perf_counter() - t0}  # the model's cost; generating the images is not counted
            store.put(f"{c}_{s}", 0, rec)
        ok = torch.tensor(rec["correct"], dtype=torch.bool)
        part = _Part(ok, cdata, rec.get("n_forward", 0), rec.get("seconds", 0.0))
        per_name.setdefault(c, []).append(part)
        rows.append(_corruption_row(model_name, card, fp, suite, clean, [part], cdata, device, key,
                                    f"{c}/{s}", c, s, len(data)))
    family = _family_source(source, suite, found)
    for c, parts in per_name.items():
        rows.append(_corruption_row(model_name, card, fp, suite, clean, parts,
                                    _combined([p.data for p in parts], family), device, key, f"{c}/mean", c, None,
                                    len(data)))
    groups = [("mean/all", names)]
    if set(COMMON) <= set(names):
        groups.append(("mean/common15", COMMON))
    for variant, group in groups:
        parts = [p for c in group for p in per_name[c]]
        rows.append(_corruption_row(model_name, card, fp, suite, clean, parts,
                                    _combined([p.data for p in parts], family), device, key, variant, None, None,
                                    len(data), corruptions=list(group)))
    log.info("%s: mean corruption accuracy %.4f over %d corruption(s) x %d severities (clean %.4f; %s)", model_name,
             rows[-len(groups)]["robust_acc"], len(names), len(sevs), clean.float().mean().item(), family)
    return rows


class _Part(NamedTuple):
    """One (corruption, severity): per-example correctness, its images, and what predicting them cost."""

    ok: torch.Tensor
    data: ImageData
    n_forward: int
    seconds: float


def _corruption_row(model_name, card, fp, suite, clean, parts, cdata, device, key, variant, corruption, severity, n,
                    corruptions=None) -> dict:
    robust = torch.cat([p.ok for p in parts])
    outcome = EpsOutcome("corruptions", 0.0, clean.repeat(len(parts)), robust, {},
                         n_forward=sum(p.n_forward for p in parts), seconds=sum(p.seconds for p in parts))
    extra = {"variant": variant, "n": n, "n_evaluated": len(robust), "corruption": corruption, "severity": severity,
             "corruption_acc": robust.float().mean().item(), "clean_acc": clean.float().mean().item(),
             "robust_acc_is": "accuracy on the corrupted images (no attack)"}
    if corruptions is not None:
        extra["corruptions"] = corruptions
    return make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=outcome, data=cdata,
                    device=device, store_key=key, extra=extra)


# ----------------------------------------------------------------------------------------------------------------
# Suite kind "corrupted_adv": the attack cascade on corrupted inputs (seed paper, Table 1)
# ----------------------------------------------------------------------------------------------------------------

@register_suite_kind("corrupted_adv")
def run_corrupted_adv(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str,
                      store_root=None, device="cpu", progress: bool = True, **_) -> list[dict]:
    """The suite's attack cascade (threats/attacks as in an attack suite) on each corrupted test set.

    Rows per (corruption, severity, eps) with ``variant`` "<corruption>/<severity>", plus "mean/<severity>"
    rows over corruptions. ``clean_acc`` there is the accuracy on the corrupted images without attack;
    ``attacks[0].acc_after`` is the first attack alone (FGSM in the shipped suite) and ``robust_acc`` the
    per-example worst case over all of them. Logs the seed-style table at the end.
    """
    names, sevs = _corruption_list(suite)
    source, found = resolve_source(suite, data)
    attack_suite = replace(suite, kind="attack")
    card = getattr(model, "card", None)
    fp = model_fingerprint(model)
    opts = dict(source=source, seed=suite.seed, official_dir=found, rb_dir=suite.option("robustbench_dir"),
                cache_dir=suite.option("cache_dir"))
    rows, by_eps = [], {}
    for s in sevs:
        for c in names:
            cdata = corrupted(data, c, s, **opts)
            outcomes, key = run_suite(model, attack_suite, cdata, model_name=model_name, store_root=store_root,
                                      device=device, num_classes=getattr(card, "num_classes", 10), progress=progress)
            for o in outcomes:
                by_eps.setdefault((s, o.norm, o.eps), []).append((o, cdata, key))
                rows.append(make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=o,
                                     data=cdata, device=device, store_key=key, extra={
                                         "variant": f"{c}/{s}", "corruption": c, "severity": s,
                                         "clean_data_sha256": data.sha256,
                                         "clean_acc_is": "accuracy on the corrupted images (no attack)"}))
    family = _family_source(source, suite, found)
    for (s, norm, eps), parts in by_eps.items():
        os_ = [p[0] for p in parts]
        labels = list(os_[0].robust_after)
        merged = EpsOutcome(norm, eps, torch.cat([o.clean for o in os_]), torch.cat([o.robust for o in os_]),
                            {k: torch.cat([o.robust_after[k] for o in os_]) for k in labels},
                            sum(o.n_forward for o in os_), sum(o.n_backward for o in os_), sum(o.seconds for o in os_))
        rows.append(make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=merged,
                             data=_combined([p[1] for p in parts], family), device=device,
                             store_key=",".join(sorted({p[2] for p in parts})), extra={
                                 "variant": f"mean/{s}", "n": len(data), "n_evaluated": len(merged.clean),
                                 "severity": s, "corruptions": list(names), "clean_data_sha256": data.sha256,
                                 "clean_acc_is": "accuracy on the corrupted images (no attack)"}))
    log.info("%s on %s CIFAR-10-C:\n%s", model_name, family, seed_table(rows))
    return rows


def seed_table(rows: list[dict]) -> str:
    """Seed-paper-style table (accuracy %, rows = corruption, columns = eps): first attack / worst case."""
    rows = [r for r in rows if r.get("variant") and "/" in r["variant"]]
    epss = sorted({r["eps"] for r in rows})
    first = rows[0]["attacks"][0]["label"] if rows and rows[0]["attacks"] else "first"
    head = f"{'corruption/severity':26s}" + "".join(f"{'eps=' + format(e, 'g'):>16s}" for e in epss)
    lines = [f"cells: {first} / worst case over all attacks (accuracy %)", head]
    for v in dict.fromkeys(r["variant"] for r in rows):
        cells = []
        for e in epss:
            r = next((r for r in rows if r["variant"] == v and r["eps"] == e), None)
            cells.append(f"{100 * r['attacks'][0]['acc_after']:6.2f} / {100 * r['robust_acc']:6.2f}" if r and r["attacks"]
                         else "-")
        lines.append(f"{v:26s}" + "".join(f"{c:>16s}" for c in cells))
    return "\n".join(lines)
