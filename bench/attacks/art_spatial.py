"""ART's ``SpatialTransformation`` (grid search over rotations and translations) as a per-example attack.

ART 1.20's attack differs from the spatial suite's grid in ways this adapter handles or states:

- **Per example, not per batch.** ``generate`` picks the *one* (translation, rotation) that fools the
  most images of the batch it is given (a universal transform), and caches it for later calls. The
  adapter calls a fresh instance on each image alone, so each example gets its own worst case: ART
  stops at the first grid point (in its order) that changes the prediction, so an example survives
  iff no grid point changes it.
- **Translations in percent of the image side, rounded to whole pixels.** ``max_translation_px`` is
  converted to ``100 * px / side``; ART then rounds every grid value to an integer pixel count, so
  ±3 px with 5 values becomes (-3, -2, 0, 2, 3), not the paper's (-3, -1.5, 0, 1.5, 3).
  :meth:`ARTSpatial.grid_transforms` lists the grid ART actually searches.
- **Channels last.** ART reads the image side from ``x.shape[1]`` and ``x.shape[2]``; on NCHW input
  ``x.shape[1]`` is the channel count (3), so the x translation would round to 0 px. The model is
  wrapped to take NHWC images, so ART's axes are the image's rows and columns.
- **Its own transform.** ``scipy.ndimage.shift`` then ``rotate`` (cubic spline, zero fill), shift
  first; the suite's grid rotates then translates with one bilinear interpolation. The cross-check
  (tests/test_spatial.py) therefore runs our batched search with ART's transform
  (``rotate_translate(convention="art")``) on ART's grid and compares per example.
- **Against the clean prediction, not the label.** For a correctly classified image the two coincide;
  the adapter counts a misclassified image as not robust, as the suite does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class _ChannelsLast(nn.Module):
    """NHWC in, the wrapped NCHW model out: what ART's SpatialTransformation expects of its classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.permute(0, 3, 1, 2))


@dataclass
class ARTSpatial:
    """ART's SpatialTransformation on a grid given in pixels and degrees, run per example."""

    max_rotation: float = 30.0
    n_rotations: int = 31
    max_translation_px: float = 3.0
    n_translations: int = 5

    def percent(self, side: int) -> float:
        """ART's ``max_translation``: the pixel budget as a percentage of the image side."""
        return 100.0 * self.max_translation_px / side

    def grid_transforms(self, side: int) -> torch.Tensor:
        """(T,3) rows (angle_deg, tx, ty) that ART searches on a ``side`` px square image, in our convention
        (tx = columns = ART's ``trans_y``, ty = rows = ART's ``trans_x``), deduplicated as ART does."""
        px = int(round(side * self.percent(side) / 100.0))
        trans = sorted({int(round(g)) for g in np.linspace(-px, px, num=self.n_translations)})
        rots = sorted(set(np.linspace(-self.max_rotation, self.max_rotation, num=self.n_rotations)))
        return torch.tensor([[r, ty, tx] for tx in trans for ty in trans for r in rots], dtype=torch.float64)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int = 10
                 ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, float] | None]]:
        """Attack each image of ``x`` (N,C,H,W) in [0,1] alone.

        Returns:
            x_adv (N,C,H,W), robust (N,) bool (correct on the clean image and on ART's output), and per
            example ART's chosen (rows shift, columns shift, angle), or None when nothing fooled it.
        """
        from art.attacks.evasion import SpatialTransformation
        from art.estimators.classification import PyTorchClassifier

        n, c, h, w = x.shape
        if h != w:
            raise ValueError(f"ART's SpatialTransformation uses one translation percentage for both sides; "
                             f"got {h}x{w} images")
        model = model.eval()
        clf = PyTorchClassifier(model=_ChannelsLast(model).eval(), loss=nn.CrossEntropyLoss(),
                                input_shape=(h, w, c), nb_classes=num_classes, clip_values=(0.0, 1.0),
                                channels_first=False, device_type="gpu" if x.is_cuda else "cpu")
        imgs = x.detach().permute(0, 2, 3, 1).cpu().numpy()  # (N,H,W,C)
        adv, chosen = np.empty_like(imgs), []
        for i in range(n):
            atk = SpatialTransformation(clf, max_translation=self.percent(h), num_translations=self.n_translations,
                                        max_rotation=self.max_rotation, num_rotations=self.n_rotations, verbose=False)
            adv[i] = atk.generate(imgs[i:i + 1])[0]
            fooled = atk.fooling_rate > 0
            chosen.append((int(atk.attack_trans_x), int(atk.attack_trans_y), float(atk.attack_rot)) if fooled else None)
        x_adv = torch.from_numpy(adv).permute(0, 3, 1, 2).contiguous().to(x.device, x.dtype)
        with torch.no_grad():
            robust = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)
        return x_adv, robust.cpu(), chosen
