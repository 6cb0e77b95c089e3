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
    src = (f"import torch\nfrom torch import nn\nfrom symbench.models import register_model\n{net_src}\n\n"
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


def _data_dir(tmp_path: Path, real: bool = True) -> Path:
    """Real CIFAR-10 when present (and ``real``), else a synthetic stand-in in the same npz layout."""
    if real and (SHARED_DATA / "cifar10" / "test.npz").is_file():
        return SHARED_DATA
    d = synthetic(n=20, size=32)
    x = (d.x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    np.savez(tmp_path / "data" / "cifar10" / "test.npz", x=x, y=d.y.numpy())
    return tmp_path / "data"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """examples/submission pip-installed into a private directory (no edit to symbench), once per module."""
    tmp = tmp_path_factory.mktemp("example")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)], capture_output=True, text=True, timeout=300,
                         cwd=tmp)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return target


def _cli_submits(tmp_path: Path, site: Path, submits: list[tuple[str, str]], pre: str = "",
                 real: bool = True) -> subprocess.CompletedProcess:
    """Run ``symbench submit`` for each (model, suite) in one fresh interpreter that sees ``site``."""
    data_dir = _data_dir(tmp_path, real)
    calls = "".join(
        f"rc = main(['submit', '--model', {m!r}, '--suites', {s!r}, '--n', '20', '--out', {str(tmp_path / 'rows.jsonl')!r}, "
        f"'--store', {str(tmp_path / 'store')!r}, '--data-dir', {str(data_dir)!r}, '--device', 'cpu', "
        "'--threads', '1', '--no-progress'])\nif rc:\n    sys.exit(rc)\n" for m, s in submits)
    script = f"import sys\nfrom symbench.cli import main\n{pre}{calls}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def test_example_package_installs_lists_and_submits(tmp_path, example_site):
    """CI path: pip-install examples/submission (no edit to symbench), see it listed, submit it end to end."""
    res = _cli_submits(tmp_path, example_site, [("example_tinynet", TINY_SUITE)],
                       pre="assert main(['list', 'example*']) == 0\n")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    listed = [line.split()[0] for line in res.stdout.splitlines()[1:3]]
    assert listed == ["example_flipavg", "example_tinynet"]          # `symbench list` found the entry points
    assert "pull request" in res.stderr and "leaderboard add" in res.stderr  # what to do next goes to stderr
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["model"] for r in rows] == ["example_tinynet"]
    assert rows[0]["source"] == "entry_point:symbench_example.models:register"
    card_sha = re.search(r'^SHA256 = "([0-9a-f]{64})"', (EXAMPLE / "symbench_example" / "models.py").read_text(), re.M)
    assert rows[0]["ckpt_sha256"] == card_sha.group(1)
    assert re.fullmatch(r"[0-9a-f]{64}", rows[0]["code_sha256"]) and "wraps" not in rows[0]


def test_example_wrapper_and_defense_submit_citing_baseline_cnn4(tmp_path, example_site):
    """The example wrapper (card base="baseline_cnn4") and baseline_cnn4+example_squeeze (a defense from the
    package's symbench.defenses entry point) are submitted through the CLI; both cite the shipped baseline_cnn4
    checkpoint and their own code. Synthetic data keeps it fast (the BPDA known answer is tested in-process
    below, and on CIFAR-10 by the slow test after this one)."""
    from symbench.models import get_card

    res = _cli_submits(tmp_path, example_site, [("example_flipavg", TINY_SUITE),
                                                 ("baseline_cnn4+example_squeeze", DEFENSE_SUITE)], real=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rows = {r["model"]: r for r in map(json.loads, (tmp_path / "rows.jsonl").read_text().splitlines())}
    shipped = get_card("baseline_cnn4").sha256
    wrap, dfn = rows["example_flipavg"], rows["baseline_cnn4+example_squeeze"]
    for r in (wrap, dfn):
        assert r["wraps"] == "baseline_cnn4" and r["base_sha256"] == r["ckpt_sha256"] == shipped
    assert wrap["source"] == "entry_point:symbench_example.wrapper:register"
    assert dfn["source"] == "entry_point:symbench_example.defenses:FeatureSqueeze"
    assert len({wrap["code_sha256"], dfn["code_sha256"], create_model_code("baseline_cnn4")}) == 3
    assert "wraps baseline_cnn4" in res.stderr and "outputs_are_logits" in res.stderr  # the per-row check table
    assert [a["label"] for a in dfn["attacks"]] == ["art_pgd[steps=5]", "bpda[eot=1][steps=10]"]


@pytest.mark.slow
def test_example_defense_is_broken_by_bpda_on_cifar10(tmp_path, example_site):
    """On CIFAR-10 (a trained baseline_cnn4), PGD stalls on the example defense's rounding and BPDA, going
    through its declared purify, breaks it (measured: PGD-5 leaves 0.60, BPDA-10 0.25 of n=20). ~80 s."""
    if not (SHARED_DATA / "cifar10" / "test.npz").is_file():
        pytest.skip(f"CIFAR-10 not found under {SHARED_DATA}")
    res = _cli_submits(tmp_path, example_site, [("baseline_cnn4+example_squeeze", DEFENSE_SUITE)])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    (row,) = map(json.loads, (tmp_path / "rows.jsonl").read_text().splitlines())
    pgd, bpda = (a["acc_after"] for a in row["attacks"])
    assert row["clean_acc"] > 0.5 and bpda < pgd - 0.2, row["attacks"]
    assert "What to do about the failed check(s)" in res.stderr  # masked gradients flagged, with the remedy


def create_model_code(name: str) -> str:
    from symbench.models import create_model

    return create_model(name).card.code_sha256


DEFENSE_SUITE = str(EXAMPLE / "defense_suite.toml")


def _load_site(monkeypatch, site: Path) -> None:
    """Make ``site``'s entry points visible in this process, afresh (as a new interpreter would see them)."""
    import symbench.models.defenses as defenses

    for mod in [m for m in sys.modules if m == "symbench_example" or m.startswith("symbench_example.")]:
        monkeypatch.delitem(sys.modules, mod)
    registry._REGISTRY = {k: v for k, v in registry._REGISTRY.items() if not k.startswith("example_")}
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(defenses, "_entry_points_loaded", False)
    monkeypatch.setattr(defenses, "DEFENSES", dict(defenses.DEFENSES))
    monkeypatch.setattr(defenses, "DEFENSE_SOURCES", dict(defenses.DEFENSE_SOURCES))


def test_editing_the_wrapper_forward_recomputes(tmp_path, example_site, monkeypatch):
    """Same name, same weights, other code: a new store key, so old outcomes are never reused (and the
    unedited wrapper resubmitted reuses its own)."""
    site = tmp_path / "site"
    shutil.copytree(example_site, site)
    monkeypatch.syspath_prepend(str(site))
    kw = dict(suites=[TINY_SUITE], out=None, store=tmp_path / "store", progress=False, data=synthetic(n=20, size=32),
              device="cpu")

    def run():
        _load_site(monkeypatch, site)
        (row,), message = submit("example_flipavg", **kw)
        return row

    first, again = run(), run()
    wrapper = site / "symbench_example" / "wrapper.py"
    src = wrapper.read_text()
    assert "return (self.base(x) + self.base(x.flip(3))) / 2" in src
    wrapper.write_text(src.replace("return (self.base(x) + self.base(x.flip(3))) / 2",
                                   "return (self.base(x) + self.base(x.flip(3))) * 0.5"))  # same outputs, new code
    edited = run()
    assert first["store_key"] == again["store_key"] and first["code_sha256"] == again["code_sha256"]
    assert edited["code_sha256"] != first["code_sha256"] and edited["store_key"] != first["store_key"]
    assert edited["ckpt_sha256"] == first["ckpt_sha256"] == first["base_sha256"]
    assert sorted(p.name for p in (tmp_path / "store" / "example_flipavg").iterdir()) == sorted(
        {first["store_key"], edited["store_key"]})


def test_composition_of_symbench_parts_needs_no_paper_but_an_outside_defense_does(tmp_path, monkeypatch):
    from symbench.leaderboard.submit import load_submission
    from symbench.models.defenses import Defense, register_defense
    import symbench.models.defenses as defenses

    sub = load_submission("baseline_cnn4+quantize_defense:levels=4")
    assert sub.model.card.base == "baseline_cnn4" and sub.sha256 == registry.get_card("baseline_cnn4").sha256

    class NoPaper(Defense):
        name = "subtest_nopaper"
        randomized = False

        def purify(self, x, *, unrolled=False):
            return x

    monkeypatch.setattr(defenses, "DEFENSES", dict(defenses.DEFENSES))
    monkeypatch.setattr(defenses, "DEFENSE_SOURCES", dict(defenses.DEFENSE_SOURCES))
    register_defense(NoPaper)
    with pytest.raises(SubmissionError, match="misses required field.*paper"):
        load_submission("baseline_cnn4+subtest_nopaper")


# ---- BPDA through a third-party defense's declared non-differentiable part -----------------------------------------

def _acc(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


class Squeezed(torch.nn.Module):
    """Not a symbench Defense: a wrapper declaring its non-differentiable part with a class attribute."""

    non_differentiable = "squeeze"

    def __init__(self, base, levels=16):
        super().__init__()
        self.base, self.levels = base, levels

    def squeeze(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)

    def forward(self, x):
        return self.base(self.squeeze(x))


def test_bpda_goes_through_a_third_party_defense_declared_part(tiny_model, tiny_data, monkeypatch):
    """The example package's FeatureSqueeze (a Defense subclass) and a plain wrapper declaring
    ``non_differentiable`` both stop plain PGD by rounding; BPDA bypasses the declared part and breaks them."""
    from symbench.bench.attacks import create_attack
    from symbench.models.defenses import DeclaredDefense, find_defense

    monkeypatch.syspath_prepend(str(EXAMPLE))
    from symbench_example.defenses import FeatureSqueeze

    x, y, eps = tiny_data.x, tiny_data.y, 0.06  # undefended PGD-20 leaves ~60% of the tiny CNN's answers standing
    undefended = _acc(tiny_model, create_attack("ta_pgd", steps=20)(tiny_model, x, y, eps, seed=0), y)
    for defended in (FeatureSqueeze(tiny_model, levels=16).eval(), Squeezed(tiny_model).eval()):
        assert isinstance(find_defense(defended), (FeatureSqueeze, DeclaredDefense))
        naive = _acc(defended, create_attack("ta_pgd", steps=20)(defended, x, y, eps, seed=0), y)
        bpda = _acc(defended, create_attack("bpda", steps=20, eot=1)(defended, x, y, eps, seed=0), y)
        assert naive > undefended + 0.2, (type(defended).__name__, naive, undefended)   # rounding masks PGD
        assert bpda < naive - 0.2 and abs(bpda - undefended) <= 0.1, (type(defended).__name__, bpda, undefended)


# ---- eps overrides per threat ---------------------------------------------------------------------------------------

def test_parse_eps_overrides_named_and_plain():
    from symbench.bench.suites import parse_eps_overrides

    assert parse_eps_overrides(["linf=1/255,2/255", "l2=0.25"]) == {"linf": [1 / 255, 2 / 255], "l2": [0.25]}
    assert parse_eps_overrides(["8/255", "16/255"]) == [8 / 255, 16 / 255]
    for bad, words in ((["l3=1/255"], "unknown threat"), (["linf=1/255", "2/255"], "mixes"),
                       (["linf=eight"], "not a number"), (["linf=8"], "0-255 scale")):
        with pytest.raises(ValueError, match=words):
            parse_eps_overrides(bad)


def test_eps_override_refuses_what_would_mislabel_a_threat():
    from symbench.bench.suites import load_suite

    standard = load_suite("standard")
    with pytest.raises(ValueError, match="name the threat"):
        standard.with_overrides(eps=[1 / 255])                      # Linf-sized eps on the L2 threat too
    with pytest.raises(ValueError, match="has no l2 threat"):
        load_suite("quick").with_overrides(eps={"l2": [0.25]})
    s = standard.with_overrides(eps={"linf": [1 / 255]})
    assert [(t.norm, t.eps) for t in s.threats] == [("linf", (1 / 255,))] and s.name == "standard"
    assert s.eps_override == (("linf", (1 / 255,)),) and s.id == standard.id


class _NeverRight(torch.nn.Module):
    """Predicts a class no example has: the robust mask is empty, so a suite's attacks cost nothing."""

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), 9), 10).float() * x.mean() * 5


def test_bench_standard_with_a_linf_override_writes_no_l2_rows(tmp_path):
    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.records import validate_row

    data = synthetic(n=8, size=32)                                   # labels 0..7: class 9 never appears
    rows = bench("never_right", "standard", eps={"linf": [1 / 255]}, model=_NeverRight().eval(), data=data,
                 store=tmp_path / "store", progress=False, checks=False, device="cpu")
    assert [(r["threat"], r["eps"], r["suite"]) for r in rows] == [("linf", 1 / 255, "standard")]
    assert rows[0]["eps_override"] == {"linf": [1 / 255]}
    validate_row(rows[0])


# ---- outputs_are_logits ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale,status", [(lambda z: 1000 * z.softmax(1), "fail"), (lambda z: z.softmax(1), "fail"),
                                          (torch.sigmoid, "fail"), (lambda z: z - z.mean(1, keepdim=True), "pass"),
                                          (lambda z: z, "pass")])
def test_outputs_are_logits_catches_scaled_probabilities(scale, status):
    from types import SimpleNamespace

    from symbench.bench.checks import outputs_are_logits

    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    model = lambda x: scale(lin(x))  # noqa: E731
    assert outputs_are_logits(SimpleNamespace(model=model, x=torch.rand(16, 3, 8, 8))).status == status
