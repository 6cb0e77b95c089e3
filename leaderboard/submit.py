"""``symbench submit``: benchmark an outside model and append its rows, or refuse it before anything is written.

Two ways in:

- a Python package exposing an entry point in group ``symbench.models`` (``pip install`` it, then
  ``symbench submit --model NAME``); its card is found through the registry like ours;
- a single ``.py`` file whose ``@register_model`` registers the model
  (``symbench submit --file mymodel.py --checkpoint weights.safetensors``).

A wrapper whose card says ``base="<registered model>"`` needs no checkpoint of its own: the base's
shipped, sha256-verified weights are loaded into it and its rows cite them (``wraps``,
``base_sha256``). ``<model>+<defense>`` submits a registered model under a defense, symbench's own or
one a package registers through the entry-point group ``symbench.defenses``. Every row records the
hash of the model's code (``code_sha256``), which also keys the store.

Every check that can refuse a submission runs before the first attack, so a refused model leaves
no row and no store entry behind: required card fields, safetensors (never a pickle), the checkpoint's
sha256 against the card, and the model contract (logits of shape (N, num_classes), eval mode that
stays eval mode, deterministic and batch-independent unless the card says ``randomized``). The
suites' rows are appended all at once, only after every suite ran.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

log = logging.getLogger("symbench.submit")

# A row must be citable without asking the submitter: what it is, where it is described, which weights.
REQUIRED_CARD_FIELDS = ("family", "group", "num_classes", "input_size", "description", "paper", "sha256")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".tar")
DEFAULT_SUITES = ("quick",)


class SubmissionError(ValueError):
    """A submission was refused; nothing was written."""


@dataclass
class Submission:
    """A model that passed validation: the built module and what its rows will cite."""

    name: str
    model: torch.nn.Module
    checkpoint: Path
    sha256: str
    origin: str        # "entry_point:<module:attr>", "file:<path>" or "symbench"


# ------------------------------------------------------------------------------------------------
# finding the model
# ------------------------------------------------------------------------------------------------

def _registered() -> dict[str, object]:
    """name → factory of every registered model (built-ins and entry points loaded)."""
    from symbench.models import registered_factories

    return registered_factories()


def import_model_file(path: str | Path) -> list[str]:
    """Import a ``.py`` file that registers models; returns the names it registered.

    Refuses a file that re-registers an existing name: the later registration would silently
    replace another model for the rest of the process.
    """
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise SubmissionError(f"--file must be an existing .py file, got {path}")
    before = _registered()
    mod_name = f"symbench_submission_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise SubmissionError(f"importing {path} failed: {type(err).__name__}: {err}") from err
    after = _registered()
    clashes = sorted(k for k in before if after.get(k) is not before[k])
    if clashes:
        raise SubmissionError(f"{path.name} registers {', '.join(clashes)}, already registered by another model; "
                              "pick a new name")
    new = sorted(set(after) - set(before))
    if not new:
        raise SubmissionError(f"{path.name} registers no model: decorate the factory with "
                              "@register_model(\"name\", description=..., paper=..., sha256=...)")
    return new


def required_fields(name: str) -> tuple[str, ...]:
    """The card fields a submission must have. ``<model>+<defense>`` composes parts that are already
    registered: it needs a paper only when the defense comes from outside symbench (the defense's
    ``paper`` class attribute); the base's sha256 is what it cites."""
    from symbench.models.defenses import defense_source, is_defended_name, parse_defended

    if not is_defended_name(name):
        return REQUIRED_CARD_FIELDS
    _, cls, _ = parse_defended(name)
    outside = defense_source(cls.name) != "symbench"
    return tuple(f for f in REQUIRED_CARD_FIELDS if f != "paper" or outside)


def validate_card(card, sha256: str | None = None, required: tuple[str, ...] = REQUIRED_CARD_FIELDS) -> list[str]:
    """Problems with a card: required fields missing or not the CIFAR-10 contract the suites assume."""
    problems = []
    missing = [f for f in required if not getattr(card, f, None) and not (f == "sha256" and sha256)]
    if card.base and "sha256" in missing:
        problems.append(f"{card.name!r} wraps {card.base!r}, which has no trained checkpoint (sha256) to cite; "
                        f"train it (`symbench train {card.base}`) or pass --checkpoint for the base")
        missing.remove("sha256")
    if missing:
        problems.append(f"card of {card.name!r} misses required field(s) {', '.join(missing)} "
                        "(pass them to @register_model, e.g. description=\"...\", paper=\"arXiv:... or URL\", "
                        "sha256=\"<sha256 of the .safetensors>\")")
    if card.num_classes != 10:
        problems.append(f"card says num_classes={card.num_classes}; the leaderboard is CIFAR-10 (10 classes)")
    if tuple(card.input_size) != (3, 32, 32):
        problems.append(f"card says input_size={tuple(card.input_size)}; CIFAR-10 needs (3, 32, 32)")
    if tuple(card.input_range) != (0.0, 1.0):
        problems.append(f"card says input_range={tuple(card.input_range)}; models take [0,1] pixels "
                        "(normalization belongs inside the model)")
    return problems


def check_checkpoint(path: Path, card_sha256: str | None, given_sha256: str | None) -> str:
    """Refuse pickles and hash mismatches; returns the verified sha256."""
    from symbench.models.checkpoints import sha256_file

    if not path.is_file():
        raise SubmissionError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    pickled = path.suffix.lower() in PICKLE_SUFFIXES or head[:2] == b"PK" or head[:1] == b"\x80"
    if pickled or path.suffix != ".safetensors":
        raise SubmissionError(
            f"refusing {path.name}: pickled weights (torch.save / .pt / .pth) can execute code when loaded; "
            "submit a .safetensors file: safetensors.torch.save_file(model.state_dict(), 'model.safetensors')")
    if card_sha256 and given_sha256 and card_sha256.lower() != given_sha256.lower():
        raise SubmissionError(f"--sha256 {given_sha256} disagrees with the card's sha256 {card_sha256}")
    expected = (given_sha256 or card_sha256 or "").lower()
    got = sha256_file(path)
    if got != expected:
        raise SubmissionError(f"sha256 mismatch for {path.name}: the card says {expected or '(nothing)'}, "
                              f"the file is {got}")
    return got


def check_contract(model: torch.nn.Module, card, *, batch: int = 6, seed: int = 0) -> list[str]:
    """Problems with the model contract, found on random [0,1] images.

    The seed paper's numbers came from evaluating in train mode; these catch the ways a model can
    do that behind our back: a forward that switches to train mode or updates BatchNorm statistics,
    random outputs not declared ``randomized``, and outputs that depend on the rest of the batch.
    """
    if not isinstance(model, torch.nn.Module):
        return [f"the factory returned {type(model).__name__}, not a torch.nn.Module"]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *card.input_size, generator=g)                            # (B,3,32,32) in [0,1]
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    problems = []
    try:
        with torch.no_grad():
            out = model(x)                                                          # (B, classes)
            out2 = model(x)
            singles = torch.cat([model(x[i:i + 1]) for i in range(2)])              # (2, classes)
    except Exception as err:
        return [f"forward on a (N,3,32,32) batch in [0,1] failed: {type(err).__name__}: {err}"]
    if not torch.is_tensor(out) or out.shape != (batch, card.num_classes):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        return [f"output shape {shape} for input {tuple(x.shape)}; expected logits ({batch}, {card.num_classes})"]
    if not out.dtype.is_floating_point or not torch.isfinite(out).all():
        problems.append(f"outputs must be finite float logits, got dtype {out.dtype} with non-finite values"
                        if out.dtype.is_floating_point else f"outputs must be float logits, got {out.dtype}")
    training = sorted({type(m).__name__ for m in model.modules() if m.training})
    if training:
        problems.append(f"forward leaves the model in train mode ({', '.join(training[:4])}); does forward call "
                        "self.train()? Evaluation must run in eval mode")
    changed = [k for k, v in model.state_dict().items() if k in state and not torch.equal(v, state[k])]
    if changed:
        problems.append(f"forward changed {len(changed)} buffer(s)/parameter(s) (e.g. {changed[0]}): a train-mode "
                        "forward (BatchNorm running statistics updated) during evaluation")
    if not getattr(card, "randomized", False):
        if not torch.allclose(out, out2, atol=1e-5, rtol=1e-4):
            problems.append("two forwards of the same batch differ (dropout or noise active in eval mode?); "
                            "fix it or declare randomized=True on the card (suites then need EOT)")
        elif not torch.allclose(out[:2], singles, atol=1e-4, rtol=1e-3):
            problems.append("an example's output depends on the rest of its batch (batch statistics in eval "
                            "mode, i.e. train-mode BatchNorm?)")
    return problems


def load_submission(model: str | None = None, file: str | Path | None = None, checkpoint: str | Path | None = None,
                    sha256: str | None = None) -> Submission:
    """Find, validate and build the submitted model, or raise :class:`SubmissionError` listing every problem."""
    from symbench.models import CheckpointError, UnknownModelError, create_model, get_card, resolve_name
    from symbench.models.registry import checkpoint_path

    if file:
        new = import_model_file(file)
        if model is None:
            if len(new) != 1:
                raise SubmissionError(f"{Path(file).name} registers {', '.join(new)}: pick one with --model")
            model = new[0]
        elif model not in new:
            raise SubmissionError(f"{Path(file).name} registers {', '.join(new)}, not {model!r}")
    if not model:
        raise SubmissionError("name the model: --model NAME (an entry-point model) or --file model.py")
    try:
        name = resolve_name(model)
        card = get_card(name)
        required = required_fields(name)
    except (UnknownModelError, ValueError) as err:
        raise SubmissionError(f"{err} A package registers models through the entry-point group `symbench.models` "
                              "and defenses through `symbench.defenses` (pip install it first); a single file "
                              "through --file.") from err
    problems = validate_card(card, sha256, required)
    ckpt = Path(checkpoint) if checkpoint else checkpoint_path(card)
    if not checkpoint and file and card.checkpoint and not Path(card.checkpoint).is_absolute():
        ckpt = Path(file).resolve().parent / card.checkpoint  # a file's card names weights beside the file
    if ckpt is None:
        problems.append("no checkpoint: pass --checkpoint FILE.safetensors or set checkpoint=... on the card")
    if problems:
        raise SubmissionError(f"submission of {name!r} refused:\n  - " + "\n  - ".join(problems))
    verified = check_checkpoint(ckpt, card.sha256, sha256)
    try:  # a wrapper / <model>+<defense>: the base's weights go into its inner model (create_model finds it)
        net = (create_model(name, pretrained=True) if card.base and not checkpoint else
               create_model(name, checkpoint=ckpt, sha256=verified))
    except CheckpointError as err:
        raise SubmissionError(f"submission of {name!r} refused: {err}") from err
    except Exception as err:
        raise SubmissionError(f"building {name!r} failed: {type(err).__name__}: {err}") from err
    problems = check_contract(net, net.card)
    if problems:
        raise SubmissionError(f"submission of {name!r} refused:\n  - " + "\n  - ".join(problems))
    origin = f"file:{Path(file).name}" if file else card.source
    net.card = replace(net.card, source=origin, sha256=verified,
                       base_sha256=verified if net.card.base else None)
    return Submission(name, net, ckpt, verified, origin)


# ------------------------------------------------------------------------------------------------
# what the checks say
# ------------------------------------------------------------------------------------------------

# check → what a submitter does about a failure (docs/checks.md has the rule behind each)
REMEDIES = {
    "outputs_are_logits": "return the pre-softmax logits from forward (no softmax, sigmoid or scaling of "
                          "probabilities); cross-entropy attacks get weak gradients from probabilities",
    "gradients_nonzero": "a non-differentiable step (quantization, rounding, argmax) hides the gradient: declare it "
                         "(a Defense's purify, or non_differentiable = \"<method>\" on a wrapper) and run a suite with "
                         "`bpda` (e.g. `adaptive`), which goes straight through it; the flag stays, since plain "
                         "gradients stay masked, and the row's robust accuracy counts BPDA",
    "large_eps_breaks_all": "at Linf 0.5 any image can be made grey, so surviving means the attack is blocked: "
                            "look for masked gradients and run a suite with `bpda` / `square`",
    "iterative_beats_single_step": "PGD weaker than FGSM means unusable gradients: masked gradients or randomness "
                                   "without EOT; declare the non-differentiable part or the randomness",
    "more_steps_converged": "more steps should never weaken an attack: noisy gradients (declare randomized=True "
                            "and use a suite with EOT) or an unconverged attack (a suite with more steps)",
    "apgd_not_stronger": "APGD breaks what the suite's attacks left: run a stronger suite (`standard` or `quick` "
                         "with apgd) before reading the number",
    "black_box_not_stronger": "a gradient-free attack beat the gradient attacks: gradients are masked; add `bpda` "
                              "through the declared non-differentiable part",
    "transfer_not_stronger": "a surrogate's gradients beat the model's own: its gradients are masked; declare the "
                             "non-differentiable part so `bpda` can bypass it",
    "deterministic_or_eot": "the forward is random: declare randomized=True on the card and run a suite whose "
                            "attacks use EOT (e.g. `bpda` with eot > 1)",
    "monotone_in_eps": "accuracy rose with eps, so some attack failed at the larger eps: rerun with more steps "
                       "or restarts",
}


def check_table(rows: list[dict]) -> list[str]:
    """Every row's checks as a table (status, check, detail), and for each failed check what to do about it."""
    lines, failed = [], {}
    for r in rows:
        acc = f"clean {r['clean_acc']:.3f}" + (f" robust {r['robust_acc']:.3f}" if r.get("robust_acc") is not None
                                               else "")
        lines.append(f"{r.get('suite_id', r.get('suite'))} {r.get('threat')} eps={r.get('eps_display', r.get('eps'))}"
                     f" (n={r.get('n')}): {acc}, verdict {r.get('verdict')}")
        for cname, c in (r.get("checks") or {}).items():
            lines.append(f"  {c['status']:5s} {cname:28s} {c['detail']}")
            if c["status"] == "fail":
                failed.setdefault(cname, c["detail"])
    if failed:
        lines.append("What to do about the failed check(s):")
        for cname in failed:
            lines.append(f"  {cname}: {REMEDIES.get(cname, 'see docs/checks.md')} (docs/checks.md#{cname})")
    return lines


def escalation_lines(rows: list[dict]) -> list[str]:
    """Per escalated row: the suite's number, the escalated one and each remedy's effect; per flagged row not
    escalated: why, and the command that escalates it."""
    from symbench.bench.checks.escalate import escalate_command, flagged

    lines = []
    for r in rows:
        where = f"{r.get('suite_id', r.get('suite'))} {r.get('threat')} eps={r.get('eps_display', r.get('eps'))}"
        esc = r.get("escalation")
        if esc and r.get("escalated_robust_acc") is not None:
            effects = "; ".join(f"{e['remedy']} broke {e['broke']} of {e['attacked']}" for e in esc.get("effects", []))
            lines.append(f"{where}: escalated robust accuracy {r['escalated_robust_acc']:.3f} (the suite's "
                         f"{r['robust_acc']:.3f}; surrogate {esc.get('surrogate') or 'none'}): {effects}")
        elif flagged(r):
            why = r.get("escalation_skipped") or "not requested"
            lines.append(f"{where}: flagged ({', '.join(flagged(r))}) but not escalated ({why}); escalate it with: "
                         f"{escalate_command(r)}")
    return lines


# ------------------------------------------------------------------------------------------------
# running it
# ------------------------------------------------------------------------------------------------

def submit(model: str | None = None, *, file=None, checkpoint=None, sha256=None, suites=DEFAULT_SUITES, n=None,
           eps=None, data_dir=None, out=None, store=None, device=None, progress=True,
           data=None, escalate: bool = True, surrogate=None) -> tuple[list[dict], str]:
    """Validate, run ``suites`` and append their rows to ``out``; returns (rows, what to do next).

    Args:
        model: registered name (an installed entry-point package), or the name a ``file`` registers.
        file: a single ``.py`` file with ``@register_model``.
        checkpoint: the ``.safetensors`` weights (default: the card's ``checkpoint``).
        sha256: expected sha256 of the checkpoint (default: the card's).
        suites: suite names or .toml paths to run (default ``quick``).
        n: number of test images per suite (default: each suite's).
        eps: per-threat eps override, ``{"linf": [1/255]}`` (or a list for one-threat suites), as
            :func:`symbench.bench.suites.parse_eps_overrides` returns; rows record it in ``eps_override``.
        out: rows file to append to (default: the user's ``$SYMBENCH_HOME/rows.jsonl``); nothing is appended
            unless every suite ran. Publishing to the board is separate (``--publish``, ``leaderboard add``).
        data: an ImageData to use instead of CIFAR-10 from ``data_dir`` (tests).
        escalate: rows flagged for hidden or noisy gradients are escalated (bench/checks/escalate.py: the
            cheap logits remedy, transfer from a surrogate, APGD, full Square) and carry
            ``escalated_robust_acc``; False (``--no-escalate``) skips it and the flagged rows say so.
        surrogate: a registered model to transfer from (default: the card's base, else the default rule).
    """
    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.records import append_rows, validate_row
    from symbench.bench.suites import load_suite

    from symbench.paths import user_rows

    out = user_rows() if out is None else out
    sub = load_submission(model, file, checkpoint, sha256)
    try:  # unknown suites and eps overrides that do not fit a suite fail here, before any attack
        specs = [load_suite(s).with_overrides(eps=eps) for s in suites]
    except ValueError as err:
        raise SubmissionError(f"submission of {sub.name!r} refused: {err}") from err
    rows = []
    for s in suites:
        log.info("running suite %s on %s", s, sub.name)
        rows += bench(sub.name, s, data_dir=data_dir, n=n, eps=eps, out=None, store=store, device=device,
                      progress=progress, model=sub.model, data=data, escalate=escalate, surrogate=surrogate,
                      escalate_skipped=None if escalate else "--no-escalate")
    for r in rows:
        validate_row(r)
    added = append_rows(out, rows) if out else 0
    suspect = [r for r in rows if r.get("verdict") == "suspect"]
    card = sub.model.card
    inside = f"wraps {card.base}, " if card.base else ""
    lines = [f"{sub.name} ({sub.origin}, {inside}checkpoint {sub.checkpoint.name} sha256 {sub.sha256[:12]}, code "
             f"sha256 {(card.code_sha256 or '?')[:12]}): {len(rows)} row(s) from suite(s) "
             f"{', '.join(s.id for s in specs)}; {added} new row(s) appended to {out}."]
    lines += check_table(rows)
    lines += escalation_lines(rows)
    if suspect:
        lines.append(f"{len(suspect)} row(s) are marked suspect (a validity check failed); the page will show them so. "
                     "Fix what the failed checks point at and submit again: changed code is a new run.")
    lines += [
        "To put it on the leaderboard, in a clone of the symbench repository open a pull request that contains:",
        f"  1. the rows, published from {out} by `symbench leaderboard add {out} --model {sub.name}` (or rerun with "
        "--publish; never edit rows by hand),",
        "  2. the rebuilt pages: run `symbench leaderboard build --publish` and add leaderboard/v1/,",
        "  3. where to get the model: "
        + (f"{Path(file).name} (or the model in symbench's models/)" if file else
           "symbench's own models and defenses (nothing to ship)" if sub.origin == "symbench" else
           f"your package (entry point {sub.origin.removeprefix('entry_point:')}; a pip-installable URL)")
        + f" and the checkpoint {sub.checkpoint.name} (or a URL to it) with sha256 {sub.sha256},",
        "Reviewers rerun the same command; rows that do not reproduce are not merged.",
    ]
    return rows, "\n".join(lines)
