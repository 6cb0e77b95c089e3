"""CIFAR-10-C's 19 corruptions, applied here: ``corrupt_image(x, name, severity, seed)`` on one uint8 image.

They use CIFAR-10-C's own severity parameters (``make_cifar_c.py`` in hendrycks/robustness, smaller than the
ImageNet-C ones the ``imagecorruptions`` package hard-codes) and imagecorruptions' helpers (defocus disk, numpy
motion blur, frost textures); each image is seeded on its own, so a subset gives the same images as the full
set. Where the images come from and the suite kinds that use them: ``corruption_sources.py``, ``corruptions.py``.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

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
