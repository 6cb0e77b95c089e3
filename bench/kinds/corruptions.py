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
import io
import logging
import os
import time
import warnings
from dataclasses import replace
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from symbench.bench.data import ImageData, cache_dir as user_cache_dir, from_uint8
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome, check_model_output, defense_settings, model_fingerprint, run_suite
from symbench.bench.run.store import Store, run_key
from symbench.bench.suites import Suite, register_suite_kind

log = logging.getLogger(__name__)

COMMON = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
          "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
          "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")   # CIFAR-10-C's 4 extra; the seed uses all 19
ALL = COMMON + EXTRA
SEVERITIES = (1, 2, 3, 4, 5)
GENERATOR = "cifar10c-params-v1"   # bump when a generated image could change: it keys the cache and the rows


# ----------------------------------------------------------------------------------------------------------------
# Generated corruptions: make_cifar_c.py's parameters, imagecorruptions' helpers, one RandomState per image.
# Each takes x (H,W,3) uint8, severity 1..5 and a RandomState, and returns values in [0,255].
# ----------------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _ic():
    """imagecorruptions' corruption module (its import warns about pkg_resources; silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions.corruptions as ic
    return ic


def _gaussian(x, sigma, **kw):
    from skimage.filters import gaussian

    return gaussian(x, sigma=sigma, **kw)


def _gaussian_noise(x, s, rs):
    c = [0.04, 0.06, .08, .09, .10][s - 1]
    x = x / 255.
    return np.clip(x + rs.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(x, s, rs):
    c = [500, 250, 100, 75, 50][s - 1]
    x = x / 255.
    return np.clip(rs.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(x, s, rs):
    from skimage.util import random_noise

    c = [.01, .02, .03, .05, .07][s - 1]
    # skimage draws from its own Generator; seeding it from rs keeps the image deterministic
    return np.clip(random_noise(x / 255., mode="s&p", amount=c, rng=int(rs.randint(2**31))), 0, 1) * 255


def _speckle_noise(x, s, rs):
    c = [.06, .1, .12, .16, .2][s - 1]
    x = x / 255.
    return np.clip(x + x * rs.normal(size=x.shape, scale=c), 0, 1) * 255


def _gaussian_blur(x, s, rs):
    c = [.4, .6, 0.7, .8, 1][s - 1]
    return np.clip(_gaussian(x / 255., c, channel_axis=-1), 0, 1) * 255


def _glass_blur(x, s, rs):
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    x = np.uint8(_gaussian(x / 255., sigma, channel_axis=-1) * 255)
    h_, w_ = x.shape[:2]
    for _ in range(iterations):   # the reference's "swap" of two row views copies one pixel; kept as is
        for h in range(h_ - delta, delta, -1):
            for w in range(w_ - delta, delta, -1):
                dx, dy = rs.randint(-delta, delta, size=(2,))
                hp, wp = h + dy, w + dx
                x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return np.clip(_gaussian(x / 255., sigma, channel_axis=-1), 0, 1) * 255


def _defocus_blur(x, s, rs):
    import cv2

    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    x = x / 255.
    kernel = _ic().disk(radius=radius, alias_blur=alias)
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=-1)
    return np.clip(channels, 0, 1) * 255


def _motion_blur(x, s, rs):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    out = _ic()._motion_blur(np.array(x), radius=radius, sigma=sigma, angle=rs.uniform(-45, 45))
    return np.clip(out, 0, 255)


def _clipped_zoom(img, zoom_factor):
    """Zoom into the centre and trim back to the input size (make_cifar_c's version, any H and W)."""
    from scipy.ndimage import zoom

    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    img = zoom(img[top:top + ch, left:left + cw], (zoom_factor, zoom_factor, 1), order=1)
    th, tw = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[th:th + h, tw:tw + w]


def _zoom_blur(x, s, rs):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][s - 1]
    x = (x / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for z in c:
        out += _clipped_zoom(x, z)
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255


def _snow(x, s, rs):
    import cv2

    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    x = np.asarray(x, dtype=np.float32) / 255.
    h, w = x.shape[:2]
    layer = rs.normal(size=(h, w), loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[..., None], c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer.squeeze(-1), 0, 1) * 255).astype(np.uint8)   # the reference blurs a uint8 image
    layer = _ic()._motion_blur(layer.astype(np.float32), radius=c[4], sigma=c[5], angle=rs.uniform(-135, -45))
    layer = (np.clip(np.round(layer), 0, 255).astype(np.uint8) / 255.)[..., None]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


@lru_cache(maxsize=8)
def _frost_texture(idx: int) -> np.ndarray:
    import cv2

    path = Path(_ic().__file__).parent / "frost" / ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg",
                                                    "frost5.jpg", "frost6.jpg"][idx]
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"imagecorruptions frost texture missing: {path}")
    return cv2.resize(img, (0, 0), fx=0.2, fy=0.2)


def _frost(x, s, rs):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    frost = _frost_texture(int(rs.randint(5)))
    h, w = x.shape[:2]
    top, left = rs.randint(0, frost.shape[0] - h), rs.randint(0, frost.shape[1] - w)
    frost = frost[top:top + h, left:left + w][..., [2, 1, 0]]
    return np.clip(c[0] * np.asarray(x, dtype=np.float64) + c[1] * frost, 0, 255)


def _plasma_fractal(mapsize, wibbledecay, rs):
    """Diamond-square height map in [0,1] (imagecorruptions' plasma_fractal; its ``np.float_`` fails on numpy 2)."""
    assert mapsize & (mapsize - 1) == 0
    a = np.empty((mapsize, mapsize), dtype=np.float64)
    a[0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbled(arr):
        return arr / 4 + wibble * rs.uniform(-wibble, wibble, arr.shape)

    while step >= 2:
        corner = a[0:mapsize:step, 0:mapsize:step]
        sq = corner + np.roll(corner, shift=-1, axis=0)
        sq += np.roll(sq, shift=-1, axis=1)
        a[step // 2:mapsize:step, step // 2:mapsize:step] = wibbled(sq)
        dr = a[step // 2:mapsize:step, step // 2:mapsize:step]
        ul = a[0:mapsize:step, 0:mapsize:step]
        a[0:mapsize:step, step // 2:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        a[step // 2:mapsize:step, 0:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= wibbledecay
    a -= a.min()
    return a / a.max()


def _fog(x, s, rs):
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    x = x / 255.
    h, w = x.shape[:2]
    max_val = x.max()
    size = 1 << (max(h, w, 2) - 1).bit_length()     # 32 for CIFAR, as in the reference
    x = x + c[0] * _plasma_fractal(size, c[1], rs)[:h, :w][..., None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def _brightness(x, s, rs):
    from skimage.color import hsv2rgb, rgb2hsv

    c = [.05, .1, .15, .2, .3][s - 1]
    x = rgb2hsv(x / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _contrast(x, s, rs):
    c = [.75, .5, .4, .3, 0.15][s - 1]
    x = x / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _elastic_transform(x, s, rs):
    import cv2
    from scipy.ndimage import map_coordinates

    size = min(x.shape[:2])    # IMSIZE = 32 in the reference
    alpha, sigma, affine = [(size * 0, size * 0, size * 0.08), (size * 0.05, size * 0.2, size * 0.07),
                            (size * 0.08, size * 0.06, size * 0.06), (size * 0.1, size * 0.04, size * 0.05),
                            (size * 0.1, size * 0.03, size * 0.03)][s - 1]
    image = np.asarray(x, dtype=np.float32) / 255.
    shape = image.shape
    centre, half = np.float32(shape[:2]) // 2, min(shape[:2]) // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    pts2 = pts1 + rs.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
    image = cv2.warpAffine(image, cv2.getAffineTransform(pts1, pts2), shape[:2][::-1],
                           borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(rs.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (_gaussian(rs.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dx, dy = dx[..., None], dy[..., None]
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    idx = np.reshape(gy + dy, (-1, 1)), np.reshape(gx + dx, (-1, 1)), np.reshape(gz, (-1, 1))
    return np.clip(map_coordinates(image, idx, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def _pixelate(x, s, rs):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[:2]
    img = Image.fromarray(x).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(img.resize((w, h), Image.BOX), dtype=np.float64)


def _jpeg_compression(x, s, rs):
    c = [80, 65, 58, 50, 40][s - 1]
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=c)
    return np.asarray(Image.open(buf), dtype=np.float64)


def _spatter(x, s, rs):
    import cv2

    c = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][s - 1]
    x = np.asarray(x, dtype=np.float32) / 255.
    liquid = _gaussian(rs.normal(size=x.shape[:2], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        liquid = (liquid * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        peak = np.max(m, axis=(0, 1))
        # an empty liquid layer gives 0/0 = NaN in the reference; no spatter is what it means
        m = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0) * c[4]
        color = np.concatenate([v / 255. * np.ones_like(m[..., :1]) for v in (175, 238, 238)], axis=2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    m = np.where(liquid > c[3], 1, 0)
    m = _gaussian(m.astype(np.float32), c[4])
    m[m < 0.8] = 0
    color = np.concatenate([v / 255. * np.ones_like(x[..., :1]) for v in (63, 42, 20)], axis=2)   # mud brown
    color *= m[..., None]
    x *= (1 - m[..., None])
    return np.clip(x + color, 0, 1) * 255


def _saturate(x, s, rs):
    from skimage.color import hsv2rgb, rgb2hsv

    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][s - 1]
    x = rgb2hsv(x / 255.)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


CORRUPTIONS = {name: globals()[f"_{name}"] for name in ALL}


def _image_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def corrupt_image(x: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """One corrupted image: ``x`` (H,W,3) uint8 → (H,W,3) uint8. Severity 0 returns an unchanged copy.

    The result is truncated to uint8 like ``make_cifar_c.py`` does (``np.uint8(corruption(img))``).
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(ALL)}")
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected one uint8 (H,W,3) image, got {x.dtype} {x.shape}")
    if severity == 0:
        return x.copy()
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 0..5, got {severity}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(CORRUPTIONS[name](x, severity, np.random.RandomState(seed)), dtype=np.float64)
    return np.uint8(np.clip(np.nan_to_num(out), 0, 255))


def corrupt_images(x: np.ndarray, name: str, severity: int, seed: int,
                   index: np.ndarray | list[int] | None = None) -> np.ndarray:
    """Corrupt a (N,H,W,3) uint8 batch; image i is seeded by (seed, name, severity, index[i]) only, so a
    subset gives the same images as the full set."""
    index = np.arange(len(x)) if index is None else np.asarray(index)
    return np.stack([corrupt_image(img, name, severity, _image_seed(seed, name, severity, int(i)))
                     for img, i in zip(x, index)]) if len(x) else x.copy()


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
