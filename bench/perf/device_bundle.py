"""``make device-bundle``: what a lent GPU machine needs for ``make gpu-check``, in under 64 MiB.

The device machine this workplace lends (``/work/.library/device``) has Python 3.12 with torch, numpy,
scipy, pandas, scikit-learn, sympy, tqdm and safetensors, but reaches no package registry and does not
see ``../shared``; what travels with the working tree is capped at 64 MiB. So this writes two
git-ignored folders for the device tool's ``carry``:

- ``.devsite/``: the toolkits the image lacks, unpacked from wheels for that Python at the versions
  pinned in ``requirements.lock`` (pyautoattack without its 45 MB example model);
- ``.devdata/cifar10/{test,train}.npz``: the first ``--n-data`` images of each split, in the layout
  ``--data-dir`` reads.

and prints the ``run`` call (``bench/perf/device_check.sh``), so a session that is lent a GPU spends
its device minutes on the check and none on packaging.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
# Imported by the quick suite, the checks, training and perf, and absent from the device image.
NEEDED = ("adversarial-robustness-toolbox", "torchattacks", "pyautoattack", "e2cnn", "dill", "multiprocess",
          "jsonschema", "jsonschema-specifications", "referencing", "rpds-py")
DROP = ("pyautoattack/examples",)  # example models in the wheel: 45 MB nothing imports
LIMIT_MB = 64.0


def pinned(names=NEEDED, lock: Path = LOCK) -> list[str]:
    """``name==version`` for each name, from the lock file (so the device runs what CI tests)."""
    versions = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower().replace("_", "-")] = version.split(";")[0].strip()
    missing = [n for n in names if n not in versions]
    if missing:
        raise SystemExit(f"device_bundle: {', '.join(missing)} not pinned in {lock}")
    return [f"{n}=={versions[n]}" for n in names]


def download(specs: list[str], dest: Path, python: str) -> list[Path]:
    """Wheels for CPython ``python`` on manylinux x86-64, no dependencies (those are named in ``specs``)."""
    platforms = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 17)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python, "--implementation", "cp", "-d", str(dest)] + [a for p in platforms for a in ("--platform", p)]
    subprocess.run(cmd + specs, check=True)
    return sorted(dest.glob("*.whl"))


def unpack(wheels: list[Path], site: Path) -> None:
    """Unzip each wheel into ``site`` (what ``pip install --target`` does for these pure/binary wheels)."""
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
    for rel in DROP:
        shutil.rmtree(site / rel, ignore_errors=True)


def subset_data(src: Path, dest: Path, n: int) -> None:
    """The first ``n`` images of each CIFAR-10 split, same layout and dtypes as ``../shared/data``."""
    (dest / "cifar10").mkdir(parents=True, exist_ok=True)
    for split in ("test", "train"):
        with np.load(src / "cifar10" / f"{split}.npz") as d:
            np.savez_compressed(dest / "cifar10" / f"{split}.npz", x=d["x"][:n], y=d["y"][:n])


def _mb(paths) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def travelling_mb(root: Path = ROOT, carried=()) -> float:
    """What the device tool sends: tracked + untracked-not-ignored files, plus the carried folders."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    tree = [root / p for p in out.split("\0") if p]
    return _mb(tree) + sum(_mb(Path(c).rglob("*")) for c in carried)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"), help="holds cifar10/{test,train}.npz")
    p.add_argument("--n-data", type=int, default=2000, help="images per split to carry (the check uses 500)")
    p.add_argument("--python", default="3.12", help="the device's Python (its image: 3.12)")
    p.add_argument("--site", default=str(ROOT / ".devsite"))
    p.add_argument("--data-out", default=str(ROOT / ".devdata"))
    args = p.parse_args(argv)
    site, data = Path(args.site), Path(args.data_out)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = download(pinned(), Path(tmp), args.python)
        unpack(wheels, site)
    subset_data(Path(args.data_dir), data, args.n_data)
    total = travelling_mb(carried=(site, data))
    print(f"{site}: {_mb(site.rglob('*')):.1f} MB from {len(wheels)} wheels; {data}: {_mb(data.rglob('*')):.1f} MB; "
          f"working tree + carried: {total:.1f} of {LIMIT_MB:.0f} MiB")
    if total > LIMIT_MB:
        print(f"device_bundle: {total:.1f} MiB would not travel (limit {LIMIT_MB:.0f}); lower --n-data",
              file=sys.stderr)
        return 1
    rel = [str(Path(x).resolve().relative_to(ROOT)) for x in (site, data)]
    print(f'device run: command "bash bench/perf/device_check.sh", carry {rel}, timeout_s 480')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
