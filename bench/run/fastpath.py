"""The fast path (issue 27): run a model in ``channels_last`` where that is measured faster, at the same
outcomes up to float rounding.

Off by default. The eager path (NCHW, what every published row was computed with) is untouched, and
:func:`symbench.bench.run.runner.suite_run_key` hashes exactly what it hashed before whenever
:func:`layout_for` says ``None``: with the fast path off, and with it on for a model it does not apply to.

On (``symbench bench --fast``, or ``SYMBENCH_FAST=1`` in the environment, which shards, Ray workers and
child processes inherit), a deterministic model whose family is in :data:`FAMILY_LAYOUT` runs in that
family's layout (:func:`prepare`, called once where the runner prepares the model): ``channels_last``
converts its weights and each input on entry; ``channels_last_forward`` converts only the inputs of
forward-only passes. Its store key and rows then carry the layout, so outcomes of two layouts are never
mixed. The conversion is invisible outside the model: attacks still get and give NCHW-contiguous inputs
and input gradients, so their random draws (``rand_like`` of an input or a gradient) are the eager
path's; only the model's own float rounding differs (tests/test_fastpath.py counts what that flips).

Not applied to: families not measured, models without a card (unmeasured code), randomized models and
defenses (kept eager: their purification steps are a different mix of passes, and their noise draws).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

ENV = "SYMBENCH_FAST"
CHANNELS_LAST = "channels_last"                  # weights and every input in channels_last
CHANNELS_LAST_FORWARD = "channels_last_forward"  # inputs of forward-only (no-grad) passes only; weights as they are
FOLD_BN = "fold_bn"                              # suffix: eval BatchNorm folded into the conv before it
LAYOUTS = (CHANNELS_LAST, CHANNELS_LAST_FORWARD, f"{CHANNELS_LAST}+{FOLD_BN}")

# The layout each family runs in on the fast path: the one whose standard-suite pass mix is fastest (AT
# models: ~75% forward-only passes, mostly Square's queries; ~25% forward+backward to the input). Measured
# side by side in one process, CPU ms per image at batch 128, 1 thread, weights frozen as in an attack,
# eager | channels_last | channels_last+fold_bn (`python -m symbench.bench.perf.fastpath --families`
# measures every layout per family again; bench/perf/results.jsonl keeps the runs):
#   baseline_cnn10_pgdat  fwd 0.357 | 0.227 | 0.198   fwd+bwd 0.774 | 0.673 | 0.457   suite mix 1.36x | 1.75x
#   cascaded10_pgdat      fwd 0.466 | 0.322 | 0.291   fwd+bwd 1.114 | 1.000 | 0.934   suite mix 1.28x | 1.39x
#   parallel_rot10_pgdat  fwd 0.441 | 0.338 | 0.304   fwd+bwd 1.019 | 0.955 | 0.731   suite mix 1.19x | 1.43x
#   equivariant10_pgdat   fwd 0.423 | 0.343 (nothing to fold)   fwd+bwd 0.814 | 1.003: e2cnn's R2Conv is slower
#       backward in channels_last, so only its forward-only passes switch (channels_last_forward: fwd 0.331,
#       fwd+bwd as eager; suite mix ~1.13x)
# parallel_rotscale / weighted_rotscale: channels_last fwd 1.26-1.40x, fwd+bwd 1.05x at batch 250; their plain
# blocks fold. torch.inference_mode() measured no faster than no_grad (within 5%), which every forward-only
# query already runs under (clean pass, scoring, Square's queries). torch.compile: off, see the README.
FAMILY_LAYOUT = {
    "baseline": CHANNELS_LAST, "baseline_at": CHANNELS_LAST, "cascaded": CHANNELS_LAST, "cascaded_at": CHANNELS_LAST,
    "parallel_rot": CHANNELS_LAST, "parallel_rot_at": CHANNELS_LAST, "parallel_rotscale": CHANNELS_LAST,
    "weighted_rotscale": CHANNELS_LAST, "equivariant": CHANNELS_LAST_FORWARD, "equivariant_at": CHANNELS_LAST_FORWARD,
}
FOLD_FAMILY_LAYOUTS = frozenset({CHANNELS_LAST})  # fold BatchNorm too (where a model has conv→BN pairs)

_MARK = "_symbench_layout"        # the layout prepare() put the model in (absent: never touched)
_HOOK = "_symbench_layout_hook"   # its forward pre-hook's handle
_FOLD = "_symbench_folded"        # on a folded conv: (bn, versions, weight, bias)
_STRIDES = "_symbench_strides"    # the 4-d weights' strides before the conversion, restored exactly after
_PINNED = "_symbench_eager"       # on a defense's modules: eager, also when its base is run on its own


def set_fast(on: bool = True) -> None:
    """Turn the fast path on or off for this process and the processes it starts."""
    os.environ[ENV] = "1" if on else "0"


@contextmanager
def as_computed(row: dict):
    """The fast-path setting a row was computed with (on where it records a ``layout``), for the duration.

    A row's store key includes its layout, so recomputing or verifying a ``--fast`` row must look for (and
    run in) that layout whatever this process was started with; restored afterwards.
    """
    before = os.environ.get(ENV)
    set_fast(bool(row.get("layout")))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def fast_enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def layout_for(model: nn.Module) -> str | None:
    """The layout the fast path runs ``model`` in (one of :data:`LAYOUTS`), or None for the eager path.

    Depends only on the fast-path setting and the model's card (never on timing or device), so a shard,
    a worker and the driver agree on it, and with it on the run's store key.
    """
    if not fast_enabled() or getattr(model, _PINNED, False):
        return None
    from symbench.models.defenses.base import find_defense

    card = getattr(model, "card", None)
    if card is None or getattr(card, "randomized", False) or find_defense(model) is not None:
        return None
    layout = FAMILY_LAYOUT.get(getattr(card, "family", None))
    if layout in FOLD_FAMILY_LAYOUTS and foldable_pairs(model):
        layout = f"{layout}+{FOLD_BN}"
    return layout


class _ToChannelsLast(torch.autograd.Function):
    """Input → channels_last; its gradient goes back NCHW-contiguous, as the eager path gives it."""

    @staticmethod
    def forward(ctx, x):
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _to_channels_last(module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (_ToChannelsLast.apply(x), *args[1:])
    return None


def _to_channels_last_no_grad(module, args):
    x = args[0]
    if not torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def foldable_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, bn) where a plain ``nn.Sequential`` feeds a Conv2d's output only to the BatchNorm2d after it."""
    pairs = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        mods = list(seq)
        for a, b in zip(mods, mods[1:]):
            if type(a) is nn.Conv2d and type(b) is nn.BatchNorm2d and b.running_mean is not None:
                pairs.append((a, b))
    return pairs


def _versions(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple:
    return tuple(t._version for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
                 if t is not None)


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` in eval mode as one conv (constants: attacks need input gradients only)."""
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        w = conv.weight * scale.view(-1, 1, 1, 1)  # keeps the weight's memory format
        b = (conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean
        b = b * scale + (bn.bias if bn.bias is not None else 0)
    return w, b


def _folded_conv_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    bn, versions, w, b = getattr(conv, _FOLD)
    if conv.training or bn.training:
        return nn.Conv2d.forward(conv, x)
    if versions != _versions(conv, bn):  # weights loaded or changed since: fold again
        w, b = _folded(conv, bn)
        setattr(conv, _FOLD, (bn, _versions(conv, bn), w, b))
    return conv._conv_forward(x, w, b)


def _folded_bn_forward(bn: nn.BatchNorm2d, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if conv.training or bn.training:
        return nn.BatchNorm2d.forward(bn, x)
    return x  # already applied by the folded conv


def _fold_bn(model: nn.Module, on: bool) -> None:
    """Fold (or unfold) every foldable BatchNorm by overriding the two modules' ``forward`` on the instances:
    state_dict, classes and the code hash stay as they are; train mode falls back to the modules' own code."""
    from functools import partial

    for conv, bn in foldable_pairs(model):
        if on and not hasattr(conv, _FOLD):
            setattr(conv, _FOLD, (bn, _versions(conv, bn), *_folded(conv, bn)))
            conv.forward = partial(_folded_conv_forward, conv)
            bn.forward = partial(_folded_bn_forward, bn, conv)
        elif not on and hasattr(conv, _FOLD):
            for m, attr in ((conv, _FOLD), (conv, "forward"), (bn, "forward")):
                delattr(m, attr)


def _tensors(model: nn.Module):
    for mod in model.modules():
        for table in (mod._parameters, mod._buffers):
            for name, t in table.items():
                if t is not None and t.dim() == 4:
                    yield mod, table, name, t


def _strides(model: nn.Module) -> list:
    return [(table, name, t.stride()) for _, table, name, t in _tensors(model)]


def _restore_strides(saved: list) -> None:
    """Each 4-d weight back to the strides it had (not merely contiguous: e2cnn's lifting filter is born
    channels_last-strided), with its current values; a Parameter stays the same object."""
    for table, name, stride in saved:
        t = table.get(name)
        if t is None or t.stride() == stride:
            continue
        new = torch.empty_strided(t.shape, stride, dtype=t.dtype, device=t.device).copy_(t.detach())
        if isinstance(t, nn.Parameter):
            t.data = new
        else:
            table[name] = new


def prepare(model: nn.Module, layout: str | None = "auto") -> str | None:
    """Put ``model`` in ``layout`` and return it: ``"auto"`` is :func:`layout_for`'s, None the eager path.

    Weights (e2cnn's cached expanded filters included: they are buffers) are converted in place, and a
    forward pre-hook converts each input on entry. Preparing a model for None undoes an earlier
    ``channels_last``; a model never prepared is not touched at all (the eager path stays as it was).
    """
    if layout == "auto":
        layout = layout_for(model)
        if fast_enabled():
            _pin_defense_eager(model)
    if layout not in (None, *LAYOUTS):
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)} or None (eager, NCHW)")
    current = getattr(model, _MARK, None)
    if layout == current:
        return layout
    if current is not None:  # back to eager
        getattr(model, _HOOK).remove()
        _fold_bn(model, False)
        if hasattr(model, _STRIDES):
            _restore_strides(getattr(model, _STRIDES))
            delattr(model, _STRIDES)
        delattr(model, _HOOK)
        delattr(model, _MARK)
    if layout is not None:
        base = layout.split("+")[0]
        if base == CHANNELS_LAST:
            setattr(model, _STRIDES, _strides(model))
            model.to(memory_format=torch.channels_last)
        if layout.endswith(f"+{FOLD_BN}"):
            _fold_bn(model, True)  # after the conversion: the folded weights keep the layout
        hook = _to_channels_last if base == CHANNELS_LAST else _to_channels_last_no_grad
        setattr(model, _HOOK, model.register_forward_pre_hook(hook))
        setattr(model, _MARK, layout)
    return layout


def _pin_defense_eager(model: nn.Module) -> None:
    """A defended model stays eager, its base included: the base's own run (the defense's base reference,
    its gain) then keys and computes eager too, so the defended model never runs a fast base under an
    eager key."""
    from symbench.models.defenses.base import find_defense

    if find_defense(model) is None:
        return
    for m in model.modules():
        if m is not model:
            if current_layout(m) is not None:
                prepare(m, None)
            setattr(m, _PINNED, True)


def current_layout(model: nn.Module) -> str | None:
    """The layout :func:`prepare` left ``model`` in (None: eager)."""
    return getattr(model, _MARK, None)


def use_threads(threads: int | None) -> int:
    """Set torch's CPU threads: ``threads``, else :func:`default_threads`. Returns the count set."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


def default_threads() -> int:
    """CPU threads a run uses unless told: ``OMP_NUM_THREADS`` where set (what torch and numpy users set on
    a shared machine or for K processes side by side; ``--threads`` used to override it silently), else the
    cores this process may run on (a SLURM or taskset allocation, not the node's ``os.cpu_count()``)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS={env!r} is not a whole number of threads") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
