"""Where corrupted CIFAR-10 images come from: generated here (seeded, cached under the user cache), the official
CIFAR-10-C files, or RobustBench's loader; ``corrupted(data, name, severity, source=...)`` picks one.
(See ``corruptions.py`` for what each source means and how rows record it.)
"""
from __future__ import annotations

import hashlib
import logging
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from symbench.bench.data import ImageData, cache_dir as user_cache_dir, from_uint8
from symbench.bench.kinds.corruption_ops import GENERATOR, SEVERITIES, corrupt_images

log = logging.getLogger(__name__)


def to_uint8(data: ImageData) -> np.ndarray:
    """(N,H,W,3) uint8 pixels of ``data`` (exact for data made by ``from_uint8``)."""
    return (data.x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _generator_tag(seed: int) -> str:
    try:
        ver = metadata.version("imagecorruptions")
    except metadata.PackageNotFoundError:
        ver = "absent"
    return f"generated:imagecorruptions-{ver}:{GENERATOR}:seed={seed}"


def generated(data: ImageData, name: str, severity: int, seed: int = 0,
              cache_dir: str | os.PathLike | None = None) -> ImageData:
    """``data`` with ``name`` at ``severity`` applied here (seeded), cached as .npy under ``cache_dir``.

    Args:
        data: clean images; ``data.indices`` (or the position) seeds each image.
        name: one of :data:`ALL`.
        severity: 1..5 (0: the clean images, relabelled as generated).
        seed: generation seed (recorded in ``source``).
        cache_dir: cache root (default ``<user cache>/corruptions``, see ``symbench.paths.user_cache``).
    """
    index = np.asarray(data.indices if data.indices else range(len(data)))
    tag = _generator_tag(seed)
    key = hashlib.sha256(f"{tag}|{data.sha256}|{index.tobytes().hex()}".encode()).hexdigest()[:16]
    path = Path(cache_dir or user_cache_dir() / "corruptions") / key / f"{name}-{severity}.npy"
    x = None
    if path.is_file():
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:   # a damaged cache file is regenerated, never trusted
            log.warning("ignoring unreadable cache %s: %s", path, err)
        if x is not None and x.shape != (len(data), *data.x.shape[2:], 3):
            x = None
    if x is None:
        x = corrupt_images(to_uint8(data), name, severity, seed, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, path)
    return from_uint8(x, data.y.numpy(), f"{tag}:{name}/{severity}", data.split, data.indices)


# ----------------------------------------------------------------------------------------------------------------
# Official CIFAR-10-C
# ----------------------------------------------------------------------------------------------------------------

def official_dirs(data: ImageData | None = None, extra: list | tuple = ()) -> list[Path]:
    """Directories that may hold ``CIFAR-10-C/``: options, env vars, then where the clean CIFAR-10 came from."""
    dirs = [Path(d).expanduser() for d in (*extra, os.environ.get("SYMBENCH_CIFAR10C"), os.environ.get("SYMBENCH_DATA"))
            if d]
    if data is not None and ":" in data.source and data.source.split(":", 1)[0] in ("npz", "torchvision"):
        src = Path(data.source.split(":", 1)[1])
        dirs += [src, src.parent]
    out = []
    for d in dirs:
        for cand in (d / "CIFAR-10-C", d):
            if cand not in out:
                out.append(cand)
    return out


def find_official(data: ImageData | None = None, extra: list | tuple = ()) -> Path | None:
    """The first directory holding CIFAR-10-C's ``labels.npy``, or None."""
    for d in official_dirs(data, extra):
        if (d / "labels.npy").is_file():
            return d
    return None


def is_cifar10_test(data: ImageData) -> bool:
    return data.split == "test" and data.source.split(":", 1)[0] in ("npz", "torchvision") and len(data) <= 10000


def load_official(root: str | os.PathLike, name: str, severity: int, indices=None, n: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one corruption/severity from the official layout (memory-mapped reads).

    Args:
        root: directory holding ``<name>.npy`` and ``labels.npy``.
        indices: test-set indices to take (default the first ``n``, or all 10000).
    """
    root = Path(root)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    arr = np.load(root / f"{name}.npy", mmap_mode="r")
    labels = np.load(root / "labels.npy", mmap_mode="r")
    if arr.shape[1:] != (32, 32, 3) or arr.dtype != np.uint8 or len(arr) % 5:
        raise ValueError(f"{root / (name + '.npy')}: expected (5*N,32,32,3) uint8, got {arr.dtype} {arr.shape}")
    per = len(arr) // 5
    idx = np.arange(per if n is None else n) if indices is None else np.asarray(indices)
    if idx.size and (idx.min() < 0 or idx.max() >= per):
        raise ValueError(f"indices must lie in 0..{per - 1}")
    off = (severity - 1) * per
    return np.ascontiguousarray(arr[off + idx]), np.asarray(labels[off + idx], dtype=np.int64)


def import_robustbench():
    """``import robustbench`` with AutoAttack aliased first (robustbench imports ``autoattack``, which installs
    as ``pyautoattack``); uses bench/robustbench_compat.py when present."""
    try:
        from symbench.models.robustbench_compat import import_robustbench as _imp
    except ImportError:  # pragma: no cover - checkouts without the shared helper
        _imp = None
    if _imp is not None:
        return _imp()
    import importlib
    import importlib.util
    import sys

    if "autoattack" not in sys.modules and importlib.util.find_spec("autoattack") is None:
        import pyautoattack
        import pyautoattack.state

        sys.modules["autoattack"] = pyautoattack
        sys.modules["autoattack.state"] = pyautoattack.state
    return importlib.import_module("robustbench")


def load_robustbench(data_dir: str | os.PathLike, name: str, severity: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` images of one corruption through ``robustbench.data.load_cifar10c`` (downloads when missing)."""
    import_robustbench()
    from robustbench.data import load_cifar10c

    x, y = load_cifar10c(n_examples=n, severity=severity, data_dir=str(data_dir), shuffle=False, corruptions=[name])
    x8 = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return x8, y.numpy().astype(np.int64)


def corrupted(data: ImageData, name: str, severity: int, *, source: str = "auto", seed: int = 0,
              official_dir: Path | None = None, rb_dir: str | os.PathLike | None = None,
              cache_dir=None) -> ImageData:
    """The corrupted counterpart of ``data`` (clean CIFAR-10 test images) for one corruption/severity.

    Args:
        source: "official" (needs ``official_dir``), "robustbench" (``rb_dir``, may download), "generated".
    """
    if source == "generated":
        return generated(data, name, severity, seed, cache_dir)
    if not is_cifar10_test(data):
        raise ValueError(f"{source} CIFAR-10-C only matches the CIFAR-10 test set, not {data.source!r}; "
                         "use source='generated'")
    if source == "official":
        x, y = load_official(official_dir, name, severity, indices=data.indices, n=len(data))
        src = f"CIFAR-10-C:{official_dir}:{name}/{severity}"
    elif source == "robustbench":
        if data.indices:
            raise ValueError("robustbench's load_cifar10c returns the first n test images; load the clean data "
                             "without sample_seed")
        x, y = load_robustbench(rb_dir or user_cache_dir(), name, severity, len(data))
        src = f"robustbench:{rb_dir or user_cache_dir()}/CIFAR-10-C:{name}/{severity}"
    else:
        raise ValueError(f"unknown CIFAR-10-C source {source!r}")
    if not np.array_equal(y, data.y.numpy()):
        raise ValueError(f"CIFAR-10-C labels for {name}/{severity} do not match the clean test labels")
    return from_uint8(x, y, src, "test", data.indices)
