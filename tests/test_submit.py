"""Submissions: a valid outside model gets rows; an invalid one is refused before anything is written."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from symbench.bench.data import synthetic
from symbench.leaderboard.submit import SubmissionError, submit
from symbench.models import registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "submission"
TINY_SUITE = str(EXAMPLE / "tiny_suite.toml")
SHARED_DATA = Path(os.environ.get("SYMBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

GOOD_NET = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x - 0.5))).mean((2, 3)))
"""

# forward bodies that break the contract, each with the words the refusal must contain
BAD_FORWARDS = {
    "wrong_output_shape": ("return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))[:, :5]", "output shape"),
    "forward_calls_train": ("self.train()\n        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))",
                            "train mode"),
    "dropout_in_eval": ("h = torch.nn.functional.dropout(self.conv(x), 0.5, training=True)\n"
                        "        return self.fc(torch.relu(h).mean((2, 3)))", "two forwards of the same batch differ"),
    "batch_statistics": ("h = torch.nn.functional.batch_norm(self.conv(x), None, None, training=True)\n"
                         "        return self.fc(torch.relu(h).mean((2, 3)))", "depends on the rest of its batch"),
}


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Models registered by a test stay in that test (the registry is process-wide)."""
    registry.list_models()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def write_submission(tmp_path: Path, name: str, *, forward: str | None = None, card: str | None = None,
                     weights: str = "safetensors") -> tuple[Path, Path, str]:
    """A one-file submission (model + @register_model card) and its checkpoint; returns (file, ckpt, sha256)."""
    from symbench.models.checkpoints import save_weights

    net_src = GOOD_NET if forward is None else GOOD_NET.replace(
        "return self.fc(torch.relu(self.bn(self.conv(x - 0.5))).mean((2, 3)))", forward)
    ns: dict = {}
    exec("import torch\nfrom torch import nn\n" + net_src, ns)
    torch.manual_seed(0)
    net = ns["Net"]().eval()
    if weights == "safetensors":
        ckpt = tmp_path / f"{name}.safetensors"
        sha = save_weights(net, ckpt)
    else:  # a pickle, under its usual name or disguised as safetensors
        ckpt = tmp_path / (f"{name}.pt" if weights == "pickle" else f"{name}.safetensors")
        torch.save(net.state_dict(), ckpt)
        from symbench.models.checkpoints import sha256_file
        sha = sha256_file(ckpt)
    if card is None:
        card = f'description="test net", paper="none: unit test", sha256="{sha}", checkpoint="{ckpt.name}"'
    src = (f"import torch\nfrom torch import nn\nfrom models import register_model\n{net_src}\n\n"
           f"@register_model({name!r}, group='C1', {card})\ndef {name}(num_classes=10):\n    return Net()\n")
    path = tmp_path / f"{name}.py"
    path.write_text(src)
    return path, ckpt, sha


def run_submit(tmp_path, file, **kw):
    kw.setdefault("suites", [TINY_SUITE])
    return submit(file=file, out=tmp_path / "out" / "rows.jsonl", store=tmp_path / "out" / "store", progress=False,
                  data=synthetic(n=20, size=32), device="cpu", **kw)


def test_file_submission_appends_rows(tmp_path):
    file, ckpt, sha = write_submission(tmp_path, "subtest_good")
    rows, message = run_submit(tmp_path, file)
    stored = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert len(stored) == len(rows) == 1
    r = stored[0]
    assert r["model"] == "subtest_good" and r["suite"] == "submission_ci" and r["n"] == 20
    assert r["ckpt_sha256"] == sha and r["source"] == "file:subtest_good.py"
    assert r["verdict"] in ("trusted", "suspect") and r["checks"]
    assert "pull request" in message and sha in message


def test_refused_missing_card_fields(tmp_path):
    file, ckpt, sha = write_submission(tmp_path, "subtest_nocard", card=f'description="", checkpoint="{tmp_path}/subtest_nocard.safetensors"')
    with pytest.raises(SubmissionError, match="misses required field") as err:
        run_submit(tmp_path, file)
    assert "paper" in str(err.value) and "sha256" in str(err.value) and "description" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", sorted(BAD_FORWARDS))
def test_refused_contract_violations(tmp_path, case):
    forward, words = BAD_FORWARDS[case]
    file, _, _ = write_submission(tmp_path, f"subtest_{case}", forward=forward)
    with pytest.raises(SubmissionError, match="refused") as err:
        run_submit(tmp_path, file)
    assert words in str(err.value)
    assert not (tmp_path / "out").exists(), "a refused submission wrote something"


@pytest.mark.parametrize("weights", ["pickle", "pickle_named_safetensors"])
def test_refused_pickled_weights(tmp_path, weights):
    file, ckpt, _ = write_submission(tmp_path, f"subtest_{weights}", weights=weights)
    with pytest.raises(SubmissionError, match="pickled weights"):
        run_submit(tmp_path, file, checkpoint=ckpt)
    assert not (tmp_path / "out").exists()


def test_refused_sha256_mismatch(tmp_path):
    file, ckpt, _ = write_submission(tmp_path, "subtest_badsha", card='description="d", paper="p", sha256="' + "0" * 64
                                     + '", checkpoint="subtest_badsha.safetensors"')
    with pytest.raises(SubmissionError, match="sha256 mismatch"):
        run_submit(tmp_path, file)
    assert not (tmp_path / "out").exists()


def test_cli_refusal_is_a_clear_error(tmp_path, capsys):
    from symbench.cli import main

    file, _, _ = write_submission(tmp_path, "subtest_cli", forward=BAD_FORWARDS["forward_calls_train"][0])
    rc = main(["submit", "--file", str(file), "--suites", TINY_SUITE, "--out", str(tmp_path / "rows.jsonl"),
               "--store", str(tmp_path / "store"), "--threads", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "symbench: error: submission of 'subtest_cli' refused" in err and "train mode" in err
    assert not (tmp_path / "rows.jsonl").exists()


def _data_dir(tmp_path: Path) -> Path:
    """Real CIFAR-10 when present, else a synthetic stand-in in the same npz layout."""
    if (SHARED_DATA / "cifar10" / "test.npz").is_file():
        return SHARED_DATA
    d = synthetic(n=20, size=32)
    x = (d.x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    np.savez(tmp_path / "data" / "cifar10" / "test.npz", x=x, y=d.y.numpy())
    return tmp_path / "data"


def test_example_package_installs_lists_and_submits(tmp_path):
    """CI path: pip-install examples/submission (no edit to symbench), see it listed, submit it end to end."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = tmp_path / "rows.jsonl"
    script = ("import sys\nfrom symbench.cli import main\nassert main(['list', 'example*']) == 0\n"
              f"sys.exit(main(['submit', '--model', 'example_tinynet', '--suites', {TINY_SUITE!r}, '--n', '20', "
              f"'--out', {str(out)!r}, '--store', {str(tmp_path / 'store')!r}, '--data-dir', {str(_data_dir(tmp_path))!r}, "
              "'--device', 'cpu', '--threads', '1', '--no-progress']))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "example_tinynet" in res.stdout.split("\n")[1]           # `symbench list` found the entry point
    assert "pull request" in res.stderr and "leaderboard add" in res.stderr  # what to do next goes to stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == ["example_tinynet"]
    assert rows[0]["source"] == "entry_point:symbench_example.models:register"
    card_sha = re.search(r'^SHA256 = "([0-9a-f]{64})"', (EXAMPLE / "symbench_example" / "models.py").read_text(), re.M)
    assert rows[0]["ckpt_sha256"] == card_sha.group(1)
