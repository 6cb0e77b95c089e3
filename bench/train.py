"""``symbench train``: seeded, resumable CIFAR-10 training that writes a verified checkpoint and card.

Recipe: SGD (nesterov, momentum 0.9), one-cycle learning rate, reflect-pad-4 random crop + horizontal
flip (``crop+flip+rot30+trans3`` adds a random rotation within ±30° and translation within ±3 px per
image: torchvision's affine, bilinear, zero fill), optional adversarial training (``fgsm_rs``: FGSM
from a random start, Wong et al. 2020; ``pgd``: PGD-k, Madry et al. 2018) at Linf ``adv_eps`` on the
[0,1] pixel scale. The data order and augmentation of epoch e depend only on (seed, e), so a run
resumed from its last finished epoch gives the same weights as one that was never stopped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from symbench.models.checkpoints import save_weights
from symbench.models.registry import TrainRecipe, create_model, get_card, resolve_name

from symbench.bench.data import ImageData, load_cifar10

log = logging.getLogger(__name__)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random crop after reflect-padding by 4, then random horizontal flip; (N,3,H,W) → same shape."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    i = torch.randint(0, 9, (n,), generator=g)
    j = torch.randint(0, 9, (n,), generator=g)
    rows = (i.view(n, 1) + torch.arange(h).view(1, h))  # (N,H)
    cols = (j.view(n, 1) + torch.arange(w).view(1, w))  # (N,W)
    out = padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1),
                 rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


_ROT_TRANS = re.compile(r"crop\+flip\+rot(\d+)\+trans(\d+)")


def parse_augment(name: str) -> tuple[bool, float, int]:
    """A recipe's ``augment`` → (crop+flip?, max rotation in degrees, max translation in pixels).

    Known: ``"none"``, ``"crop+flip"`` and ``"crop+flip+rot<D>+trans<P>"`` (crop+flip, then a random
    rotation within ±D° and an integer translation within ±P px, as Engstrom et al. 2019's spatial
    threat model; ``crop+flip+rot30+trans3`` is the rotaug baselines' recipe). Anything else is refused.
    """
    if name == "none":
        return False, 0.0, 0
    if name == "crop+flip":
        return True, 0.0, 0
    m = _ROT_TRANS.fullmatch(name)
    if m is None:
        raise ValueError(f"unknown augmentation {name!r}: use 'none', 'crop+flip' or "
                         "'crop+flip+rot<degrees>+trans<pixels>' (e.g. 'crop+flip+rot30+trans3')")
    return True, float(m.group(1)), int(m.group(2))


def rotate_translate(x: torch.Tensor, angles: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``angles[i]`` degrees about its centre and shift it by ``shifts[i] = (tx, ty)``
    pixels (right, down): torchvision's affine, bilinear, zero fill. Its angle turns clockwise as displayed:
    90° is ``torch.rot90(x, -1, (2, 3))``.

    Args:
        x: (N, C, H, W) images in [0, 1]; the output is too (bilinear weights are convex, the fill is 0).
        angles: (N,) degrees.  shifts: (N, 2) integer pixels.
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    return torch.stack([TF.affine(img, angle=float(a), translate=[int(t[0]), int(t[1])], scale=1.0, shear=[0.0, 0.0],
                                  interpolation=InterpolationMode.BILINEAR, fill=0.0)
                        for img, a, t in zip(x, angles.tolist(), shifts.tolist())])  # (N,C,H,W)


def random_rotate_translate(x: torch.Tensor, g: torch.Generator, degrees: float, pixels: int) -> torch.Tensor:
    """Per image, ``torchvision.transforms.v2.RandomAffine(degrees, translate=(pixels/W, pixels/H))``'s
    distribution (angle uniform in ±degrees, each shift ``round(uniform(±pixels))``), drawn from ``g``
    rather than the global RNG (RandomAffine draws one transform per call, and from the global RNG), so
    an epoch's augmentation depends only on (seed, epoch) and a resumed run matches an uninterrupted one.
    """
    n = x.shape[0]
    angles = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * degrees
    shifts = torch.round((torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1) * pixels).to(torch.int64)
    return rotate_translate(x, angles, shifts)


def augment_batch(x: torch.Tensor, name: str, g: torch.Generator) -> torch.Tensor:
    """The recipe's augmentation ``name`` (see :func:`parse_augment`) of a training batch, drawn from ``g``."""
    crop_flip, degrees, pixels = parse_augment(name)
    if crop_flip:
        x = augment(x, g)
    if degrees or pixels:
        x = random_rotate_translate(x, g, degrees, pixels)
    return x


def one_cycle_lr(step: int, total: int, peak: float, warm_frac: float = 0.25) -> float:
    """Linear warm-up to ``peak`` over the first quarter, then cosine down to ~0."""
    warm = max(1, int(total * warm_frac))
    if step < warm:
        return peak * (0.04 + 0.96 * step / warm)
    t = (step - warm) / max(1, total - warm)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def adversarial_batch(model, x, y, recipe: TrainRecipe, g: torch.Generator) -> torch.Tensor:
    """Training-time adversarial examples (inside the eps ball and [0,1])."""
    eps = recipe.adv_eps
    delta = ((torch.rand(x.shape, generator=g) * 2 - 1) * eps).to(x.device)  # CPU generator: same draws anywhere
    if recipe.adv == "fgsm_rs":
        steps, alpha = 1, 1.25 * eps
    elif recipe.adv == "pgd":
        steps, alpha = recipe.adv_steps, 2.5 * eps / recipe.adv_steps
    else:
        raise ValueError(f"unknown adversarial training {recipe.adv!r} (use 'pgd' or 'fgsm_rs')")
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
        grad, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()


@torch.no_grad()
def _device(model) -> torch.device:
    return next(model.parameters()).device


def accuracy(model, data: ImageData, batch_size: int = 500) -> float:
    model.eval()
    dev, correct = _device(model), 0
    for i in range(0, len(data), batch_size):
        pred = model(data.x[i:i + batch_size].to(dev)).argmax(1).cpu()
        correct += (pred == data.y[i:i + batch_size]).sum().item()
    return correct / len(data)


def pgd_accuracy(model, data: ImageData, eps: float, steps: int = 10) -> float:
    """Accuracy under a plain PGD-10 (random start, step 2.5·eps/steps), for monitoring training."""
    model.eval()
    recipe = TrainRecipe(adv="pgd", adv_eps=eps, adv_steps=steps)
    g = torch.Generator().manual_seed(0)
    dev = _device(model)
    x_adv = adversarial_batch(model, data.x.to(dev), data.y.to(dev), recipe, g).cpu()
    return accuracy(model, ImageData(x_adv, data.y, data.source, "", data.split))


def train_epoch(model, opt, data: ImageData, recipe: TrainRecipe, epoch: int, step0: int, total_steps: int,
                progress: bool = True) -> tuple[float, int]:
    """One epoch; returns (mean loss, global step after it)."""
    g = torch.Generator().manual_seed(recipe.seed * 1000 + epoch)
    perm = torch.randperm(len(data), generator=g)
    model.train()
    dev = _device(model)
    step, losses = step0, []
    batches = range(0, len(data), recipe.batch_size)
    for i in tqdm(batches, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress, leave=False):
        idx = perm[i:i + recipe.batch_size]
        x, y = data.x[idx], data.y[idx]
        x = augment_batch(x, recipe.augment, g)  # "crop+flip": exactly augment(x, g), as before rotaug
        x, y = x.to(dev), y.to(dev)  # random draws stay on the CPU generator: the same on every device
        if recipe.adv:
            model.eval()  # BN statistics of clean data steer the attack; the update is in train mode
            x = adversarial_batch(model, x, y, recipe, g)
            model.train()
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(step, total_steps, recipe.lr)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    return sum(losses) / max(1, len(losses)), step


STATE_FILE = "state.safetensors"
STATE_META = "symbench_train_state"  # the safetensors header metadata key holding the JSON progress
STATE_FORMAT = 2  # 1: state.safetensors + state.json, keyed by model and seed only (before issue 15)


def _recipe_for_key(recipe: dict) -> dict:
    """The recipe without the thread count (which does not change the schedule or the weights)."""
    return {k: v for k, v in recipe.items() if k != "threads"}


def state_key(name: str, recipe: dict, data_sha256: str, model_kwargs: dict | None = None) -> str:
    """What a training state belongs to: model, architecture kwargs, recipe and the training data's content."""
    import hashlib

    parts = {"model": name, "kwargs": model_kwargs or {}, "recipe": _recipe_for_key(recipe), "data": data_sha256}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_state(state_dir: Path, model, opt, meta: dict, best: dict | None) -> None:
    """Weights, momentum, best-epoch weights, RNG and progress in ONE file, replaced atomically.

    A kill at any moment leaves either the previous epoch's complete state or this one's, never a mix.
    """
    import tempfile

    from symbench.bench.run.store import process_umask

    state_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}  # e2cnn shares bases
    for i, p in enumerate(opt.param_groups[0]["params"]):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"momentum.{i}"] = buf.contiguous()
    for k, v in (best or {}).items():
        tensors[f"best.{k}"] = v.detach().clone().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors = {k: v.cpu() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{STATE_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={STATE_META: json.dumps({**meta, "format": STATE_FORMAT})})
        os.chmod(tmp, 0o666 & ~process_umask())
        os.replace(tmp, state_dir / STATE_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_state(state_dir: Path, model, opt, expect: dict) -> tuple[dict, dict | None] | None:
    """Restore model, momentum, RNG and progress, only from a complete state of the same (recipe, data).

    ``expect`` holds ``key``, ``recipe`` and ``data_sha256``; a state for anything else is ignored with
    a message, before the model is touched (it must never warm-start another recipe or other data).
    """
    from safetensors import safe_open

    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[STATE_META])
    except Exception as err:  # noqa: BLE001  (truncated, corrupt, or not a symbench state)
        log.warning("training state %s is unreadable (%s); starting from scratch", path, err)
        return None
    if meta.get("data_sha256") != expect["data_sha256"]:
        log.warning("training state %s was made on other training data (sha256 %s, now %s); starting from scratch",
                    path, str(meta.get("data_sha256"))[:12], expect["data_sha256"][:12])
        return None
    if _recipe_for_key(meta.get("recipe", {})) != _recipe_for_key(expect["recipe"]) or meta.get("key") != expect["key"]:
        log.warning("training state %s was for another recipe; starting from scratch", path)
        return None
    try:
        tensors = load_file(str(path), device=str(_device(model)))
    except Exception as err:  # noqa: BLE001
        log.warning("training state %s is unreadable (%s); starting from scratch", path, err)
        return None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, p in enumerate(opt.param_groups[0]["params"]):
        if f"momentum.{i}" in tensors:
            opt.state[p]["momentum_buffer"] = tensors[f"momentum.{i}"].clone()
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].cpu())
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return meta, best


def train(name: str, *, data_dir=None, out_dir: Path | None = None, resume: bool = True,
          state_root: str | Path | None = None, progress: bool = True,
          train_data: ImageData | None = None, test_data: ImageData | None = None,
          model_kwargs: dict | None = None, device: str | torch.device | None = None, **overrides) -> dict:
    """Train registered model ``name`` with its card's recipe (``overrides`` replace recipe fields).

    Writes ``<out_dir>/<name>.safetensors`` and ``<out_dir>/<name>.json`` (the trained card: sha256,
    recipe, clean accuracy on the full test set, history). Returns that card dict. ``out_dir`` defaults
    to the user's checkpoints (``symbench.paths.user_checkpoints()``), never the shipped ones; the
    resumable state lives under ``state_root`` (default ``user_train_state()``) in a folder keyed by
    the recipe and the training data's content hash.
    """
    from symbench.paths import user_checkpoints, user_train_state

    name = resolve_name(name)
    recipe = replace(get_card(name).recipe, **{k: v for k, v in overrides.items() if v is not None})
    parse_augment(recipe.augment)  # an unknown augmentation fails here, before any data is loaded
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    out_dir = Path(out_dir) if out_dir is not None else user_checkpoints()
    train_data = train_data or load_cifar10("train", data_dir)
    test_data = test_data or load_cifar10("test", data_dir)
    key = state_key(name, asdict(recipe), train_data.sha256, model_kwargs)
    state_dir = Path(state_root if state_root is not None else user_train_state()) / f"{name}-{key}"
    monitor = ImageData(test_data.x[:2000], test_data.y[:2000], test_data.source, "", "test")
    # PGD early stopping looks at training images only (the last 500), never at the test set
    holdout = ImageData(train_data.x[-500:], train_data.y[-500:], train_data.source, "", "train")

    from symbench.bench.run.evaluate import default_device

    dev = default_device(device)
    model = create_model(name, **(model_kwargs or {})).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(train_data) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    meta = {"epoch": 0, "step": 0, "seconds": 0.0, "history": [], "recipe": asdict(recipe), "key": key,
            "model": name, "data_sha256": train_data.sha256}
    best = None  # the weights of the best PGD epoch (adversarial training), kept inside the state file
    if resume:
        loaded = _load_state(state_dir, model, opt, meta)
        if loaded:
            meta, best = loaded
            log.info("resuming %s at epoch %d from %s", name, meta["epoch"], state_dir)
    for epoch in range(meta["epoch"], recipe.epochs):
        t0 = time.time()
        loss, meta["step"] = train_epoch(model, opt, train_data, recipe, epoch, meta["step"], total, progress)
        acc = accuracy(model, monitor)
        meta["seconds"] += time.time() - t0
        meta["epoch"] = epoch + 1
        entry = {"epoch": epoch + 1, "loss": round(loss, 4), "acc_first2000": acc}
        if recipe.adv:  # early stopping on PGD accuracy guards against catastrophic overfitting (FGSM-RS)
            entry["pgd10_acc_holdout"] = pgd_accuracy(model, holdout, recipe.adv_eps)
            if entry["pgd10_acc_holdout"] >= meta.get("best_pgd", -1.0):
                meta["best_pgd"], meta["best_epoch"] = entry["pgd10_acc_holdout"], epoch + 1
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        meta["history"].append(entry)
        log.info("%s epoch %d/%d %s", name, epoch + 1, recipe.epochs, entry)
        _save_state(state_dir, model, opt, meta, best)

    model.eval()
    if recipe.adv and meta.get("best_epoch", recipe.epochs) != recipe.epochs:
        log.warning("%s: PGD accuracy peaked at epoch %d; keeping that epoch's weights", name, meta["best_epoch"])
        model.load_state_dict(best)
    ckpt = out_dir / f"{name}.safetensors"
    sha = save_weights(model, ckpt)
    card = {"name": name, "checkpoint": ckpt.name, "sha256": sha, "epoch_kept": meta.get("best_epoch", recipe.epochs),
            "params": sum(p.numel() for p in model.parameters()),
            "clean_acc": accuracy(model, test_data), "n_test": len(test_data),
            "test_data": {"source": test_data.source, "sha256": test_data.sha256},
            "recipe": asdict(recipe), "train_seconds": round(meta["seconds"], 1),
            "train_device": (f"cuda:{torch.cuda.get_device_name(dev)}" if dev.type == "cuda"
                             else f"cpu x{recipe.threads} threads ({platform.machine()})"),
            "torch": torch.__version__, "history": meta["history"]}
    from symbench.bench.run.store import atomic_write_text

    atomic_write_text(out_dir / f"{name}.json", json.dumps(card, indent=1) + "\n")
    return {**card, "path": str(ckpt)}  # where the weights are (the card file names them relative to itself)
