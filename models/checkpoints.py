"""Weights in and out: safetensors only, every load verified against its sha256."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint is missing, not safetensors, or does not match its sha256."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors starts with an 8-byte little-endian header length followed by a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def load_weights(model: nn.Module, path: str | Path, sha256: str | None) -> None:
    """Load a safetensors state dict strictly after checking its hash.

    Refuses pickles (``.pt``/``.pth``/``.bin``, or any file that is not safetensors) outright: loading
    a pickle can run arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix != ".safetensors" or not _looks_like_safetensors(path):
        raise CheckpointError(f"refusing {path}: only .safetensors checkpoints are loaded "
                              "(pickled .pt/.pth files can execute code); convert it with safetensors.torch.save_file")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            raise CheckpointError(f"sha256 mismatch for {path}: expected {sha256}, got {got}")
    try:
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001  (SafetensorError, OSError: a truncated or corrupt file)
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: {msg})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(f"{path} does not fit the architecture: {str(err).splitlines()[-1].strip()}") from err
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit the architecture: missing keys {missing[:5]}, "
                              f"unexpected keys {unexpected[:5]}")


def save_weights(model: nn.Module, path: str | Path) -> str:
    """Write the state dict atomically as safetensors and return its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # clone: e2cnn layers share one sampled basis tensor, which safetensors refuses to store as aliases
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(path)
