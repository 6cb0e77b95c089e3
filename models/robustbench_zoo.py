"""``robustbench:<Name>`` models: RobustBench's model zoo as symbench models (with a card).

Architectures and checkpoints come from RobustBench (``robustbench.utils.load_model``), so a
measured row of ``robustbench:Carmon2019Unlabeled`` is the same network RobustBench evaluated. The
loaded module takes [0,1] images (RobustBench puts any normalization inside its models) and returns
logits, as our model contract asks.

Pickles: symbench only loads safetensors (``models/checkpoints.py``), but RobustBench checkpoints
are pickled ``.pt`` files that RobustBench's own loader reads with ``torch.load``. This module is the
one exception, and it keeps it safe by forcing ``weights_only=True`` for every ``torch.load`` made
during the load (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), so the unpickler only accepts tensors and
plain containers and cannot run code. A checkpoint that needs more fails with a clear error; only
``trust_pickles=True`` (or ``SYMBENCH_TRUST_ROBUSTBENCH_PICKLES=1``) lifts that, for files you trust.

Names: ``robustbench:<Name>`` is CIFAR-10 Linf; ``robustbench:L2/<Name>`` and
``robustbench:corruptions/<Name>`` pick RobustBench's other CIFAR-10 zoos.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from symbench.models.checkpoints import CheckpointError, sha256_file
from symbench.models.registry import ModelCard, UnknownModelError, count_params

log = logging.getLogger(__name__)

PREFIX = "robustbench:"
THREATS = ("Linf", "L2", "corruptions")
TRUST_ENV = "SYMBENCH_TRUST_ROBUSTBENCH_PICKLES"
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}


class RobustBenchWeightsError(CheckpointError):
    """A RobustBench checkpoint is missing and could not be downloaded, or refused to load safely."""


@dataclass(frozen=True)
class RobustBenchSpec:
    """What ``robustbench:<threat>/<Name>`` refers to."""

    name: str                   # RobustBench model id, e.g. "Carmon2019Unlabeled"
    threat: str = "Linf"        # RobustBench threat model directory: Linf, L2 or corruptions
    dataset: str = "cifar10"

    @property
    def model_name(self) -> str:
        """The symbench model name rows carry (Linf needs no threat prefix)."""
        return f"{PREFIX}{self.name}" if self.threat == "Linf" else f"{PREFIX}{self.threat}/{self.name}"


def is_robustbench_name(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_name(name: str, dataset: str = "cifar10") -> RobustBenchSpec:
    """Split ``robustbench:[<threat>/]<Name>``; the threat defaults to Linf."""
    rest = name[len(PREFIX):] if is_robustbench_name(name) else name
    threat, sep, model = rest.partition("/")
    if not sep:
        threat, model = "Linf", rest
    canon = {t.lower(): t for t in THREATS}
    if threat.lower() not in canon or not model:
        raise UnknownModelError(f"cannot parse {name!r}: expected robustbench:<Name> or "
                                f"robustbench:<{'|'.join(THREATS)}>/<Name>")
    return RobustBenchSpec(model, canon[threat.lower()], dataset)


def default_model_dir() -> Path:
    """``<user cache>/robustbench``: ``$SYMBENCH_CACHE/robustbench``, else ``$SYMBENCH_HOME/cache/robustbench``
    (never outside the user directory), read at call time."""
    from symbench.paths import user_cache

    return user_cache() / "robustbench"


def _zoo_entry(spec: RobustBenchSpec) -> dict:
    from symbench.models.robustbench_compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo = model_dicts[BenchmarkDataset(spec.dataset)][ThreatModel(spec.threat)]
    if spec.name not in zoo:
        import difflib

        close = difflib.get_close_matches(spec.name, list(zoo), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"RobustBench has no {spec.dataset}/{spec.threat} model {spec.name!r}.{hint} "
                                f"(`symbench robustbench list --threat {spec.threat}` shows the leaderboard)")
    return zoo[spec.name]


def _is_timm_model(spec: RobustBenchSpec) -> bool:
    """RobustBench hands some models (XCiT) to timm, which fetches them from the Hugging Face hub."""
    import timm

    return timm.is_model(f"{spec.name.lower().replace('-', '_')}_{spec.dataset}_{spec.threat.lower()}")


def weight_files(spec: RobustBenchSpec, model_dir: str | Path) -> list[Path]:
    """The checkpoint file(s) RobustBench's loader reads for ``spec`` under ``model_dir``.

    One ``<model_dir>/<dataset>/<threat>/<Name>.pt``, or ``<Name>.pt_m<i>.pt`` per member of an
    ensemble (RobustBench's naming).
    """
    base = Path(model_dir) / spec.dataset / spec.threat / f"{spec.name}.pt"
    ids = _zoo_entry(spec)["gdrive_id"]
    if isinstance(ids, list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(ids))]
    return [base]


def _gdrive_ids(spec: RobustBenchSpec) -> list[str]:
    ids = _zoo_entry(spec)["gdrive_id"]
    return [i for i in (ids if isinstance(ids, list) else [ids]) if i]


@contextlib.contextmanager
def _torch_load_policy(trust_pickles: bool):
    """Force every ``torch.load`` inside to ``weights_only=True`` (or to full unpickling if trusted)."""
    keys = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
    os.environ[keys[1] if trust_pickles else keys[0]] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a failed fetch raises: requests' ConnectionError and disk errors are OSError; gdown has its own."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from gdown.exceptions import FileURLRetrievalError

        errors.append(FileURLRetrievalError)
    except ImportError:  # older gdown
        pass
    return tuple(errors)


def _short_reason(err: BaseException) -> str:
    """``ConnectionError reaching drive.google.com`` rather than urllib3's nested repr."""
    host = re.search(r"host='([^']+)'", str(err))
    if host:
        return f"{err.__class__.__name__} reaching {host.group(1)}; offline?"
    return f"{err.__class__.__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


def _weights_sha256(files: list[Path]) -> str | None:
    """sha256 of the checkpoint file; for an ensemble, sha256 of its members' hex digests joined by ','."""
    present = [f for f in files if f.is_file()]
    if not present:
        return None
    if len(present) == 1:
        return sha256_file(present[0])
    return hashlib.sha256(",".join(sha256_file(f) for f in present).encode()).hexdigest()


def _missing_message(spec: RobustBenchSpec, files: list[Path], why: str) -> str:
    need = ", ".join(str(f) for f in files)
    ids = _gdrive_ids(spec)
    src = f" (RobustBench's download: https://drive.google.com/uc?id={ids[0]})" if len(ids) == 1 else ""
    return (f"RobustBench weights for {spec.model_name} ({spec.dataset}/{spec.threat}) are not available: {why}. "
            f"It needs {need}{src}; put the file there, or point --model-dir (default $SYMBENCH_HOME/cache/robustbench) "
            f"at a directory holding {spec.dataset}/{spec.threat}/{spec.name}.pt")


def load_robustbench_model(name: str, model_dir: str | Path | None = None, *, dataset: str = "cifar10",
                           download: bool = True, trust_pickles: bool | None = None) -> nn.Module:
    """Load a RobustBench model through RobustBench's own loader and give it a :class:`ModelCard`.

    Args:
        name: ``robustbench:<Name>`` (Linf) or ``robustbench:<Linf|L2|corruptions>/<Name>``; the
            prefix is optional.
        model_dir: RobustBench's model directory; files live in ``<model_dir>/<dataset>/<threat>/``.
            Default ``$SYMBENCH_HOME/cache/robustbench`` (``$SYMBENCH_CACHE/robustbench`` when set).
        dataset: RobustBench dataset id (our suites use ``cifar10``).
        download: let RobustBench download missing weights (Google Drive via gdown); when False, or
            when the download fails (offline), raise :class:`RobustBenchWeightsError` naming the file.
        trust_pickles: allow full unpickling (can execute code). Default: ``$SYMBENCH_TRUST_ROBUSTBENCH_PICKLES``,
            else False, i.e. ``weights_only=True``.

    Returns:
        The model in eval mode; [0,1] inputs → logits; ``model.card.source == "robustbench"`` and
        ``model.card.sha256`` the checkpoint's sha256.
    """
    spec = parse_name(name, dataset)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if trust_pickles is None:
        trust_pickles = os.environ.get(TRUST_ENV, "").lower() in ("1", "true", "yes", "y")
    _zoo_entry(spec)  # unknown names fail here, with suggestions
    from robustbench.utils import load_model

    timm_model = _is_timm_model(spec)
    files = [] if timm_model else weight_files(spec, model_dir)
    missing = [f for f in files if not f.is_file()]
    if missing and not download:
        raise RobustBenchWeightsError(_missing_message(spec, missing, "not in the model directory and "
                                                       "downloading is off"))
    if missing:
        log.info("downloading RobustBench weights for %s into %s", spec.model_name, model_dir)
    try:
        with _torch_load_policy(trust_pickles):
            model = load_model(spec.name, model_dir=str(model_dir), dataset=spec.dataset, threat_model=spec.threat)
    except _download_errors() as err:
        for f in missing:   # never leave a partial download behind for the next run to unpickle
            if f.is_file():
                f.unlink()
        if timm_model:
            raise RobustBenchWeightsError(f"RobustBench model {spec.model_name} is a timm model whose weights come "
                                          f"from the Hugging Face hub and could not be fetched ({_short_reason(err)}); "
                                          "fill the Hugging Face cache ($HF_HOME) first") from err
        raise RobustBenchWeightsError(_missing_message(spec, missing or files,
                                                       f"download failed ({_short_reason(err)})")) from err
    except pickle.UnpicklingError as err:
        raise RobustBenchWeightsError(
            f"{', '.join(map(str, files))} holds more than tensors, so it was refused under weights_only=True "
            f"(unpickling it could run code). If you trust the file, set {TRUST_ENV}=1. "
            f"torch said: {str(err).splitlines()[0][:200]}") from err
    model.eval()
    model.card = _card(spec, model, files)
    log.info("loaded %s (%d params) from %s", spec.model_name, model.card.params, model.card.checkpoint or "timm")
    return model


def _card(spec: RobustBenchSpec, model: nn.Module, files: list[Path]) -> ModelCard:
    ids = _gdrive_ids(spec)
    return ModelCard(
        name=spec.model_name, family="robustbench", group="C1", depth=0,
        num_classes=_NUM_CLASSES.get(spec.dataset, 10),
        input_size=(3, 32, 32) if spec.dataset.startswith("cifar") else (3, 224, 224),
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),  # takes [0,1]; any normalization is inside the model
        description=f"RobustBench {spec.dataset}/{spec.threat} model {spec.name} ({type(model).__name__})",
        paper=f"https://robustbench.github.io/#{spec.name}",
        params=count_params(model),
        checkpoint=",".join(str(f) for f in files) or None,
        sha256=_weights_sha256(files),
        url=(f"https://drive.google.com/uc?id={ids[0]}" if ids and ids[0] else None),
        source="robustbench",
    )
