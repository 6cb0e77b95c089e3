"""Progress that moves: a line on stderr at least every few seconds while a long phase runs.

A toolkit call gives no callback (one AutoAttack component on a batch of 250 images can run for
minutes), so a daemon thread reports instead: what the phase says it is doing (``set``), how long it
has been at it, and how much work the model has done meanwhile (forward/backward passes, and for an
attack with a known budget, about how many of its iterations each example has had). The thread only
reads counters; the computation, its seeds and its outcomes are exactly what they are without it.

The interval is ``$SYMBENCH_PROGRESS_SECONDS`` (default 8).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger("symbench")
ENV = "SYMBENCH_PROGRESS_SECONDS"
DEFAULT_EVERY = 8.0


def interval() -> float:
    try:
        return max(0.05, float(os.environ.get(ENV, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class PassCounter:
    """Counts images through ``model``'s forward passes, and the backward passes through them, with hooks
    (removed on exit); no change to outputs or gradients.

    For phases that call the bare model (the checks, the escalation), where no :class:`CountingModel` sits in
    between. Backward passes are counted as the gradient reaches the model's output, as CountingModel does.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.n_forward = 0
        self.n_backward = 0
        self._hook = None

    def _count(self, module, args, out) -> None:
        x = args[0] if args else None
        n = int(x.shape[0]) if hasattr(x, "shape") and len(x.shape) else 1
        self.n_forward += n
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._count_backward(n))

    def _count_backward(self, n: int):
        def hook(grad):
            self.n_backward += n
        return hook

    def __enter__(self) -> "PassCounter":
        if isinstance(self.model, nn.Module):
            self._hook = self.model.register_forward_hook(self._count)
        return self

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.remove()


class Heartbeat:
    """Reports a long phase at least every ``every`` seconds, from a daemon thread, while in its ``with``.

    Args:
        label: what the phase is (``"cascaded4 quick linf eps=8/255"``).
        counter: an object with ``n_forward`` / ``n_backward`` image counts (a CountingModel), or None.
        enabled: False makes it a no-op (``progress=False``).
        emit: where lines go (default: the ``symbench`` logger at INFO).
    """

    def __init__(self, label: str, *, counter=None, enabled: bool = True, every: float | None = None,
                 emit: Callable[[str], None] | None = None):
        self.label = label
        self.counter = counter
        self.enabled = enabled
        self.every = interval() if every is None else every
        self.emit = emit or (lambda line: log.info("%s", line))
        self.status = ""
        self._examples = 0
        self._budget: tuple[int, str] | None = None
        self._t0 = self._t_status = self._t_line = time.monotonic()
        self._f0 = self._b0 = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def set(self, status: str, *, examples: int = 0, budget: tuple[int, str] | None = None) -> None:
        """The phase moved on: now doing ``status`` on ``examples`` examples, each with a work budget of
        ``budget`` = (passes per example, "steps"|"queries") when the attack knows it."""
        with self._lock:
            self.status, self._examples, self._budget = status, examples, budget
            self._t_status = time.monotonic()
            self._f0 = getattr(self.counter, "n_forward", 0)
            self._b0 = getattr(self.counter, "n_backward", 0)

    def line(self) -> str:
        """What the thread prints now (also useful to tests)."""
        with self._lock:
            now = time.monotonic()
            parts = [f"{self.label}: {self.status or 'working'}, {_fmt_seconds(now - self._t_status)}"]
            if self.counter is not None:
                f = getattr(self.counter, "n_forward", 0) - self._f0
                b = getattr(self.counter, "n_backward", 0) - self._b0
                if self._budget and self._examples:
                    total, unit = self._budget
                    done = (b if unit == "steps" else f) / self._examples
                    parts.append(f"~{min(done, total):.0f} of ~{total} {unit} per example")
                parts.append(f"{f:,} forward / {b:,} backward passes")
            return ", ".join(parts)

    def _run(self) -> None:
        tick = min(1.0, self.every / 4)
        while not self._stop.wait(tick):
            if time.monotonic() - self._t_line >= self.every:
                self._t_line = time.monotonic()
                try:
                    self.emit(self.line())
                except Exception:  # noqa: BLE001  (a progress line must never break the run)
                    pass

    def __enter__(self) -> "Heartbeat":
        if self.enabled and self.every > 0:
            self._thread = threading.Thread(target=self._run, name="symbench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
