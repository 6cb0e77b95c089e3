"""CIFAR-10 as [0,1] float32 NCHW tensors, from a local directory or torchvision's download.

Sources, in order: ``data_dir`` (or ``$SYMBENCH_DATA``) holding either ``cifar10/{train,test}.npz``
(the layout of ../shared/data: arrays ``x`` uint8 NHWC and ``y``) or torchvision's official
``cifar-10-batches-py``; otherwise torchvision's download into the cache (only with ``download=True``).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


def cache_dir() -> Path:
    """torchvision's CIFAR-10 download and other derived data: ``$SYMBENCH_CACHE``, else ``$SYMBENCH_HOME/cache``."""
    from symbench.paths import user_cache

    return user_cache()


class DataNotFoundError(FileNotFoundError):
    """No usable copy of the dataset was found and none could be downloaded."""


class DataFileError(ValueError):
    """A data file exists but cannot be used (corrupt, truncated, not an npz, wrong arrays or labels)."""


@dataclass(frozen=True)
class ImageData:
    """A labelled image set ready for models: ``x`` (N,3,H,W) float32 in [0,1], ``y`` (N,) int64.

    ``source`` says where it came from (``npz:<dir>``, ``torchvision:<dir>``, ``synthetic``) and
    ``sha256`` hashes the uint8 pixels and labels actually selected, so a result can cite its data.
    """

    x: torch.Tensor
    y: torch.Tensor
    source: str
    sha256: str
    split: str = "test"
    indices: tuple[int, ...] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.y)

    def __post_init__(self):
        if self.x.dtype != torch.float32 or self.x.ndim != 4:
            raise ValueError(f"x must be float32 NCHW, got {self.x.dtype} {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} images but y has {len(self.y)} labels")


def content_hash(x_uint8: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the C-contiguous pixel bytes then the int64 label bytes."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x_uint8).tobytes())
    h.update(np.ascontiguousarray(y.astype(np.int64)).tobytes())
    return h.hexdigest()


def from_uint8(x: np.ndarray, y: np.ndarray, source: str, split: str = "test",
               indices: tuple[int, ...] | None = None) -> ImageData:
    """Wrap uint8 NHWC arrays as an :class:`ImageData` (converted to [0,1] NCHW float32)."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 NHWC images with 3 channels, got {x.dtype} {x.shape}")
    xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return ImageData(xt.contiguous(), yt, source, content_hash(x, y), split, indices)


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    dirs = [data_dir, os.environ.get("SYMBENCH_DATA")]
    return [Path(d).expanduser() for d in dirs if d]


def read_npz_arrays(path: Path, num_classes: int = len(CIFAR10_CLASSES)) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (uint8 NHWC) and ``y`` of an npz file, or a one-line :class:`DataFileError` naming the file.

    The zip signature is checked first: numpy would try anything else as a pickle and report
    "pickled data", which says nothing about a corrupt download.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataFileError(f"{path} is not a valid npz file (no zip signature): corrupt or not an npz")
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = {"x", "y"} - set(d.files)
            if missing:
                raise DataFileError(f"{path} lacks array(s) {sorted(missing)}; expected 'x' (uint8 NHWC) and 'y'")
            x, y = d["x"], d["y"]
    except DataFileError:
        raise
    except Exception as err:  # noqa: BLE001  (BadZipFile, zlib.error, EOFError, ValueError: all mean unreadable)
        raise DataFileError(f"{path} is not a valid npz file (truncated or corrupt: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise DataFileError(f"{path}: 'x' must be uint8 NHWC images with 3 channels, got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataFileError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataFileError(f"{path}: labels lie in {y.min()}..{y.max()}, outside CIFAR-10's classes "
                            f"0..{num_classes - 1}")
    return x, y


def _read_npz(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    for path in (root / "cifar10" / f"{split}.npz", root / f"{split}.npz"):
        if path.is_file():
            x, y = read_npz_arrays(path)
            return x, y, f"npz:{path.parent}"
    return None


def _read_torchvision(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray, str] | None:
    from torchvision.datasets import CIFAR10

    for base in (root, root / "cifar10"):
        if download or (base / CIFAR10.base_folder).is_dir():
            try:
                ds = CIFAR10(str(base), train=(split == "train"), download=download)
            except Exception as err:  # corrupt files or no network: try the next source
                log.warning("torchvision CIFAR10 at %s failed: %s", base, err)
                continue
            return ds.data, np.asarray(ds.targets, dtype=np.int64), f"torchvision:{base}"
    return None


def _read_cifar10(split: str, data_dir, download: bool) -> tuple[np.ndarray, np.ndarray, str]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    tried = []
    for root in _candidate_dirs(data_dir):
        if not root.is_dir():
            tried.append(f"{root} (not a directory)")
            continue
        found = _read_npz(root, split) or _read_torchvision(root, split, download=False)
        if found:
            return found
        tried.append(str(root))
    if download:
        found = _read_torchvision(cache_dir(), split, download=True)
        if found:
            return found
        tried.append(f"{cache_dir()} (torchvision download failed)")
    raise DataNotFoundError(
        "CIFAR-10 not found. Either pass --data-dir DIR (or set SYMBENCH_DATA) to a directory holding "
        "cifar10/{train,test}.npz (uint8 NHWC 'x', int 'y') or torchvision's cifar-10-batches-py, "
        "or allow torchvision to download it (--download, needs a network). Tried: "
        + (", ".join(tried) or "no directory given"))


def load_cifar10(split: str = "test", data_dir: str | os.PathLike | None = None, n: int | None = None,
                 *, sample_seed: int | None = None, download: bool = False) -> ImageData:
    """Load CIFAR-10 as [0,1] tensors.

    Args:
        split: "train" or "test".
        data_dir: directory with ``cifar10/{split}.npz`` or torchvision files; ``$SYMBENCH_DATA`` too.
        n: keep only n examples: the first n, or a seeded sample when ``sample_seed`` is given.
        sample_seed: seed of the sample (recorded in ``indices`` and in the data hash).
        download: allow torchvision's download into ``$SYMBENCH_HOME/cache`` (or ``$SYMBENCH_CACHE``) when nothing local exists.
    """
    x, y, source = _read_cifar10(split, data_dir, download)
    indices = None
    if n is not None:
        if n <= 0 or n > len(y):
            raise ValueError(f"n must be in 1..{len(y)}, got {n}")
        if sample_seed is None:
            x, y = x[:n], y[:n]
        else:
            idx = np.sort(np.random.default_rng(sample_seed).choice(len(y), size=n, replace=False))
            x, y, indices = x[idx], y[idx], tuple(int(i) for i in idx)
    return from_uint8(x, y, source, split, indices)


def synthetic(n: int = 64, num_classes: int = 10, seed: int = 0, size: int = 32) -> ImageData:
    """Tiny separable synthetic data for tests: each class is a distinct colour/stripe pattern plus noise."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    base = g.integers(40, 216, size=(num_classes, 1, 1, 3))
    x = base[y] + g.normal(0, 12, size=(n, size, size, 3))
    return from_uint8(np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64), "synthetic", "synthetic")
