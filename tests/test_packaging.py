"""symbench as software people install: one namespace, a wheel that works outside the repo, enforced layers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _package_source(pkg: str) -> Path:
    """The repository folder setuptools' package-dir maps ``pkg`` to."""
    mapping = SETUPTOOLS["package-dir"]
    best = max((k for k in mapping if pkg == k or pkg.startswith(k + ".")), key=len)
    rest = pkg[len(best) + 1:].split(".") if pkg != best else []
    return ROOT / mapping[best] / Path(*rest) if rest else ROOT / mapping[best]


def test_every_package_folder_is_listed_and_nothing_else_is_top_level():
    listed = set(SETUPTOOLS["packages"])
    assert all(p == "symbench" or p.startswith("symbench.") for p in listed)  # no top-level bench/models
    found = set()
    for top, pkg in (("symbench", "symbench"), ("models", "symbench.models"), ("bench", "symbench.bench"),
                     ("leaderboard", "symbench.leaderboard")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([pkg, *rel.parts]))
    assert found == listed, f"pyproject [tool.setuptools] packages is out of date: {sorted(found ^ listed)}"
    assert all((_package_source(p) / "__init__.py").is_file() for p in listed)


def _mirror(dest: Path) -> Path:
    """Copy the .py files into the installed layout (symbench/models, symbench/bench, ...) under ``dest``."""
    for pkg in SETUPTOOLS["packages"]:
        out = dest.joinpath(*pkg.split("."))
        out.mkdir(parents=True, exist_ok=True)
        for f in _package_source(pkg).glob("*.py"):
            shutil.copy(f, out / f.name)
    return dest


def test_import_layers_hold(tmp_path):
    """import-linter's contracts (pyproject): models <- bench <- leaderboard <- api <- cli, and the two bans."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.is_file():
        pytest.skip("import-linter is not installed (pip install -r requirements.lock)")
    site = _mirror(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=site, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "BROKEN" not in res.stdout and res.stdout.count("KEPT") == len(PYPROJECT["tool"]["importlinter"]["contracts"])


def test_a_new_cycle_is_caught(tmp_path):
    """The contract can fail: a models module importing the leaderboard breaks it."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.is_file():
        pytest.skip("import-linter is not installed")
    site = _mirror(tmp_path / "site")
    (site / "symbench" / "models" / "oops.py").write_text("import symbench.leaderboard.rows\n")
    res = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=site,
                         env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "BROKEN" in res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, installed into a fresh venv that sees the locked stack but not the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    [wheel] = (tmp / "dist").glob("symbench-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the locked stack (torch & co.) without the repo's editable symbench: a plain path entry, whose .pth
    # files (the editable finder among them) are not processed
    (site / "_locked_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    work = tmp / "user_project"  # a user's repository with its own models/ package
    (work / "models").mkdir(parents=True)
    (work / "models" / "__init__.py").write_text("def create_model():\n    return 'the user own models package'\n")
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SYMBENCH_HOME=str(home), PYTHONPATH=str(work), SYMBENCH_DATA=str(SHARED_DATA))
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    return dict(venv=venv, py=py, site=site, work=work, home=home, env=env, wheel=wheel, before=before)


def _run(installed, *args, timeout=600):
    cmd = [str(installed["venv"] / "bin" / "symbench"), *args] if args[0] != "python" else \
        [str(installed["py"]), *args[1:]]
    return subprocess.run(cmd, cwd=installed["work"], env=installed["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_wheel_ships_its_data_and_no_top_level_bench_or_models(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("symbench-")}
    assert tops == {"symbench"}, tops
    for data in ("symbench/leaderboard/schema.json", "symbench/leaderboard/seed_claims.json",
                 "symbench/leaderboard/robustbench_reference.jsonl", "symbench/leaderboard/v1/rows.jsonl",
                 "symbench/bench/suites/quick.toml", "symbench/models/checkpoints/cascaded4.safetensors",
                 "symbench/models/checkpoints/cascaded4.json"):
        assert data in names, data
    res = _run(installed, "python", "-c", "import models, importlib.util as u; print(models.create_model()); "
                                          "print(u.find_spec('bench'))")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[:2] == ["the user own models package", "None"]


def test_cli_works_from_outside_the_repo(installed):
    res = _run(installed, "--version")
    assert res.returncode == 0 and res.stdout.startswith("symbench "), res.stderr
    res = _run(installed, "list")
    assert res.returncode == 0 and "cascaded4" in res.stdout, res.stderr[-2000:]
    res = _run(installed, "list", "nonexist")
    assert res.returncode == 1 and "no model matches" in res.stderr
    res = _run(installed, "suites", "--format", "json")
    assert res.returncode == 0 and '"quick@' in res.stdout
    res = _run(installed, "robustbench", "list", "--top", "3")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 4, res.stdout + res.stderr[-2000:]
    out = installed["home"].parent / "board"
    res = _run(installed, "leaderboard", "build", "--out", str(out), "--no-plots")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "index.html").stat().st_size > 10_000


@pytest.mark.skipif(not (SHARED_DATA / "cifar10" / "test.npz").is_file(), reason=f"needs {SHARED_DATA}")
def test_bench_and_the_python_api_from_outside_the_repo(installed):
    res = _run(installed, "bench", "--model", "cascaded", "--n", "16", "--skip-checks", "--no-progress",
               "--format", "json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"model": "cascaded4"' in res.stdout and "rows.jsonl" in res.stderr
    assert (installed["home"] / "rows.jsonl").is_file() and (installed["home"] / "store").is_dir()
    script = ("import torch, symbench\n"
              "from models import create_model\n"  # the user's own package, untouched by symbench
              "class MyNet(torch.nn.Module):\n"
              "    def __init__(self):\n"
              "        super().__init__(); self.fc = torch.nn.Linear(3 * 32 * 32, 10)\n"
              "    def forward(self, x):\n"
              "        return self.fc(x.flatten(1))\n"
              "torch.manual_seed(0)\n"
              "df = symbench.benchmark(MyNet().eval(), n=16, checks=False, progress=False)\n"
              "print(type(df).__name__, df.loc[0, 'model'], df.loc[0, 'n'], 0 <= df.loc[0, 'robust_low'] <= df.loc[0, 'robust_acc'])\n"
              "print(len(symbench.results()))\n")
    res = _run(installed, "python", "-c", script)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split("\n")[:2] == ["DataFrame custom:MyNet 16 True", "2"], res.stdout
    after = sorted(p.relative_to(installed["site"]) for p in installed["site"].rglob("*") if "__pycache__" not in p.parts)
    assert after == installed["before"], "symbench wrote into site-packages"
