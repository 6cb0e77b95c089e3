"""RobustBench's published CIFAR-10 numbers as symbench rows (``kind: reported``), and their CLI.

RobustBench keeps one JSON per model in ``model_info/<dataset>/<threat>/<Name>.json`` with percent
strings ("89.69"), eps strings ("8/255") and a threat-dependent accuracy key. We turn each into a
row of ``leaderboard/schema.json`` so the leaderboard can put reported baselines beside our measured
rows: accuracies become floats in [0,1], eps a float, and provenance says where the number came
from (``data_source: robustbench:model_info@<commit>``, ``device: reported``, ``ckpt_sha256: null``).
Model names match what ``--model robustbench:<Name>`` measures (see ``models/robustbench_zoo.py``).

The shipped table ``leaderboard/robustbench_reference.jsonl`` is built from RobustBench commit
``78fcc9e48a07a861268f295a777b975f25155964`` (copy in ``shared/data/robustbench/model_info``) by
``symbench robustbench build-reference --model-info DIR --commit SHA``.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import subprocess
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from symbench.paths import package_file
from symbench.bench.run.records import SCHEMA_VERSION, read_rows, validate_row
from symbench.bench.run.store import atomic_write_text
from symbench.bench.suites import eps_display

log = logging.getLogger(__name__)

REFERENCE_PATH = package_file("symbench.leaderboard", "robustbench_reference.jsonl")
SHIPPED_COMMIT = "78fcc9e48a07a861268f295a777b975f25155964"
THREATS = ("Linf", "L2", "corruptions")
SUITE = "robustbench"
SUITE_VERSION = 1
N_TEST = {"cifar10": 10000}
AA_LABEL = "autoattack (reported)"
# the variant of a corruptions row: RobustBench's corruptions_acc is the mean over CIFAR-10-C's
# 15 corruptions x 5 severities
CORRUPTIONS_VARIANT = "cifar10c/mean"


def percent(value) -> float | None:
    """RobustBench percent string ("89.69") → fraction in [0,1] (0.8969), exact to the decimal given.

    Missing values come as null, "" or the string "null" (``reported`` has all three); all give None.
    """
    if value is None or str(value).strip().lower() in ("", "null"):
        return None
    try:
        frac = float(Decimal(str(value)) / Decimal(100))
    except InvalidOperation as err:
        raise ValueError(f"not a percentage: {value!r}") from err
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"percentage out of range: {value!r}")
    return frac


def parse_eps(value) -> float | None:
    """RobustBench eps ("8/255", "0.031", "0.5", null) → float on the [0,1] pixel scale."""
    if value is None or value == "":
        return None
    return float(Fraction(str(value).strip()))


def _model_name(name: str, threat: str) -> str:
    # same naming as models.robustbench_zoo.RobustBenchSpec.model_name (kept import-free of torch models)
    return f"robustbench:{name}" if threat == "Linf" else f"robustbench:{threat}/{name}"


def info_to_row(info: dict, *, name: str, threat: str, commit: str, dataset: str = "cifar10",
                created: str | None = None) -> dict:
    """One RobustBench model_info JSON → one reported row (validated against the schema).

    Args:
        info: the parsed JSON.
        name: the RobustBench model id (the JSON's file stem).
        threat: "Linf", "L2" or "corruptions" (the JSON's directory).
        commit: RobustBench commit the JSON was read at.
        dataset: RobustBench dataset directory.
        created: ISO timestamp; default now.
    """
    if threat not in THREATS:
        raise ValueError(f"unknown RobustBench threat model {threat!r}; expected one of {THREATS}")
    clean = percent(info.get("clean_acc"))
    if clean is None:
        raise ValueError(f"{dataset}/{threat}/{name}: no clean_acc")
    info_eps = parse_eps(info.get("eps"))
    if threat == "corruptions":
        robust = percent(info.get("corruptions_acc"))
        eps, attacks, variant = 0.0, [], CORRUPTIONS_VARIANT
    else:
        robust = percent(info.get("autoattack_acc"))
        if robust is None or info_eps is None:
            raise ValueError(f"{dataset}/{threat}/{name}: needs eps and autoattack_acc")
        eps, variant = info_eps, None
        attacks = [{"label": AA_LABEL, "acc_after": robust}]
    row = {
        "schema_version": SCHEMA_VERSION,
        "model": _model_name(name, threat),
        "family": "robustbench", "group": "C1", "params": None,
        "source": "robustbench",
        "kind": "reported",
        "suite": SUITE, "suite_version": SUITE_VERSION, "suite_id": f"{SUITE}@{SUITE_VERSION}#{commit[:8]}",
        "threat": threat.lower(), "eps": eps,
        "eps_display": eps_display(eps) if threat != "corruptions" else "-",
        "variant": variant,
        "n": N_TEST.get(dataset, 10000), "seed": 0,
        "clean_acc": clean, "robust_acc": robust,
        "attacks": attacks,
        "ckpt_sha256": None,
        "data_source": f"robustbench:model_info@{commit}", "data_sha256": None, "data_split": "test",
        "toolkits": {}, "device": "reported",
        "checks": {}, "verdict": "reported",
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # RobustBench's own fields, carried as given (percentages converted)
        "robustbench": {
            "name": name, "dataset": dataset, "threat_model": threat, "commit": commit,
            "eps": info.get("eps"),
            "corruptions_acc": percent(info.get("corruptions_acc")),
            "autoattack_acc": percent(info.get("autoattack_acc")),
            "external_acc": percent(info.get("external")),       # best known attack, when RobustBench lists one
            "paper_reported_acc": percent(info.get("reported")),  # what the paper claimed
        },
        "additional_data": bool(info.get("additional_data")),
        "unreliable": info.get("unreliable"),                 # true / false / null (not assessed)
        "number_forward_passes": info.get("number_forward_passes"),
        "architecture": info.get("architecture"),
        "paper": info.get("name"), "authors": info.get("authors"), "venue": info.get("venue"),
        "link": info.get("link"), "footnote": info.get("footnote"),
    }
    validate_row(row)
    return row


def _git_head(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def build_reference(model_info: str | Path, *, commit: str | None = None, dataset: str = "cifar10",
                    threats=THREATS, created: str | None = None) -> list[dict]:
    """Rows for every ``<model_info>/<dataset>/<threat>/*.json``, sorted by threat then name.

    Args:
        model_info: RobustBench's ``model_info`` directory (or its parent checkout).
        commit: RobustBench commit; default ``git rev-parse HEAD`` of the directory, else an error
            (a reference row must say where its number came from).
    """
    root = Path(model_info)
    if not (root / dataset).is_dir() and (root / "model_info" / dataset).is_dir():
        root = root / "model_info"
    if not (root / dataset).is_dir():
        raise FileNotFoundError(f"{root / dataset} not found: pass RobustBench's model_info directory")
    commit = commit or _git_head(root)
    if not commit:
        raise ValueError(f"cannot tell which RobustBench commit {root} is; pass --commit SHA")
    created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for threat in threats:
        for path in sorted((root / dataset / threat).glob("*.json")):
            info = json.loads(path.read_text())
            try:
                rows.append(info_to_row(info, name=path.stem, threat=threat, commit=commit, dataset=dataset,
                                        created=created))
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
    log.info("built %d reference rows from %s at %s", len(rows), root, commit)
    return rows


def write_reference(rows: list[dict], out: str | Path = REFERENCE_PATH) -> Path:
    """Write the table atomically (the whole file: it is rebuilt, not appended)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    return out


def reference_rows(threat: str | None = "Linf", path: str | Path = REFERENCE_PATH) -> list[dict]:
    """Reported RobustBench rows for one threat ("Linf", "L2", "corruptions"; None = all), best robust first.

    Ties are broken by clean accuracy, then name, so the order is stable.
    """
    rows = read_rows(path)
    if threat is not None:
        want = threat.lower()
        if want not in {t.lower() for t in THREATS}:
            raise ValueError(f"unknown threat {threat!r}; expected one of {', '.join(THREATS)}")
        rows = [r for r in rows if r["threat"] == want]
    return sorted(rows, key=lambda r: (-(r["robust_acc"] if r["robust_acc"] is not None else -1),
                                       -r["clean_acc"], r["model"]))


def format_reference(rows: list[dict]) -> str:
    """Fixed-width table: name, clean, robust (AutoAttack or corruptions), extra data, flags."""
    corr = bool(rows) and rows[0]["threat"] == "corruptions"
    head = "corruptions" if corr else "autoattack"
    w = max([len("model")] + [len(r["model"]) for r in rows])
    lines = [f"{'#':>3s} {'model':{w}s} {'eps':>6s} {'clean':>6s} {head:>11s} {'extra data':>10s}  notes"]
    for i, r in enumerate(rows, 1):
        rb = r.get("robustbench", {})
        notes = []
        if rb.get("external_acc") is not None:
            notes.append(f"external {rb['external_acc']:.4f}")
        if r.get("unreliable"):
            notes.append("unreliable")
        if (r.get("number_forward_passes") or 1) > 1:
            notes.append(f"{r['number_forward_passes']} forward passes")
        robust = f"{r['robust_acc']:.4f}" if r["robust_acc"] is not None else "-"
        lines.append(f"{i:3d} {r['model']:{w}s} {r.get('eps_display', ''):>6s} {r['clean_acc']:6.4f} {robust:>11s} "
                     f"{'yes' if r.get('additional_data') else 'no':>10s}  {', '.join(notes)}".rstrip())
    return "\n".join(lines)


PARAMS_PATH = package_file("symbench.leaderboard", "robustbench_params.json")


def count_zoo_params(refs: list[dict] | None = None, out: str | Path | None = PARAMS_PATH) -> dict[str, int]:
    """Parameter counts of the reference rows' models, by building each architecture from RobustBench's model zoo
    on torch's meta device (no weights, no download); ``<threat_model>/<name>`` → count, written to ``out``.

    model_info has no parameter count, and the zoo has no entry for a model without released weights: those
    stay unknown (the boards show "–").
    """
    import torch

    from symbench.models.robustbench_compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    refs = refs if refs is not None else reference_rows(None)
    counts = {}
    for r in refs:
        rb = r.get("robustbench") or {}
        zoo = model_dicts[BenchmarkDataset(rb.get("dataset", "cifar10"))][ThreatModel(rb["threat_model"])]
        if rb["name"] not in zoo:
            continue
        try:
            with torch.device("meta"):
                net = zoo[rb["name"]]["model"]()
        except Exception:  # noqa: BLE001  (computes with its weights, or wants CUDA, while built: unknown here)
            log.info("RobustBench %s/%s does not build on the meta device; its params stay unknown",
                     rb["threat_model"], rb["name"])
            continue
        counts[f"{rb['threat_model']}/{rb['name']}"] = sum(p.numel() for p in net.parameters())
    if out is not None:
        import robustbench

        doc = {"about": "Parameter counts of RobustBench's CIFAR-10 models, counted by building each architecture from "
                        "the robustbench model zoo (PyPI) on torch's meta device (no weights downloaded). Keys: "
                        "<threat_model>/<name>. Models the zoo does not hold (no released weights) are absent: their "
                        "params are unknown. Regenerate: symbench.leaderboard.robustbench_ref.count_zoo_params().",
               "robustbench": getattr(robustbench, "__version__", "1.1.1"), "params": dict(sorted(counts.items()))}
        Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    return counts
