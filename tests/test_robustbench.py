"""RobustBench baselines: the reported reference table, and ``robustbench:<Name>`` models loaded offline.

The model tests build RobustBench's Ding2020MMA architecture (WideResNet-28-4, 5.8M parameters, the
smallest CIFAR-10 Linf zoo entry that builds in well under a second) with random weights, save it the
way RobustBench stores checkpoints, and check that our loader reproduces its logits. No network.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from symbench.leaderboard.robustbench_ref import (REFERENCE_PATH, SHIPPED_COMMIT, build_reference, format_reference, info_to_row,
                                   parse_eps, percent, reference_rows)
from symbench.bench.run.records import read_rows, validate_row

SHARED_MODEL_INFO = Path(__file__).resolve().parents[2] / "shared" / "data" / "robustbench" / "model_info"
SMALL = "Ding2020MMA"


# ---------------------------------------------------------------- reference table

def test_percent_and_eps_parsing():
    assert percent("89.69") == 0.8969 and percent("0.0") == 0.0 and percent("100") == 1.0
    assert percent(None) is None and percent("") is None and percent("null") is None
    with pytest.raises(ValueError):
        percent("120")
    assert parse_eps("8/255") == 8 / 255 and parse_eps("0.031") == 0.031 and parse_eps("0.5") == 0.5
    assert parse_eps(None) is None


def test_shipped_reference_rows_validate_and_cite_their_commit():
    rows = read_rows(REFERENCE_PATH)
    by_threat = {t: sum(r["threat"] == t for r in rows) for t in ("linf", "l2", "corruptions")}
    assert by_threat == {"linf": 99, "l2": 21, "corruptions": 23}
    for r in rows:
        validate_row(r)
        assert r["kind"] == "reported" and r["verdict"] == "reported" and r["source"] == "robustbench"
        assert r["data_source"] == f"robustbench:model_info@{SHIPPED_COMMIT}"
        assert r["robustbench"]["commit"] == SHIPPED_COMMIT and r["ckpt_sha256"] is None
        assert isinstance(r["additional_data"], bool) and r["unreliable"] in (True, False, None)
    assert len({(r["model"], r["threat"]) for r in rows}) == len(rows)


def test_known_values():
    rows = {r["model"]: r for r in reference_rows(None)}
    carmon = rows["robustbench:Carmon2019Unlabeled"]  # model_info: clean "89.69", autoattack "59.53", "8/255"
    assert (carmon["clean_acc"], carmon["robust_acc"], carmon["eps"]) == (0.8969, 0.5953, 8 / 255)
    assert carmon["attacks"] == [{"label": "autoattack (reported)", "acc_after": 0.5953}]
    assert carmon["additional_data"] is True and carmon["unreliable"] is False and carmon["n"] == 10000
    xiao = rows["robustbench:Xiao2020Enhancing"]    # eps "0.031", external "7.40", unreliable
    assert xiao["eps"] == 0.031 and xiao["robustbench"]["external_acc"] == 0.074 and xiao["unreliable"] is True
    ding_l2 = rows["robustbench:L2/Ding2020MMA"]
    assert (ding_l2["threat"], ding_l2["eps"], ding_l2["robust_acc"]) == ("l2", 0.5, 0.6609)
    c = rows["robustbench:corruptions/Hendrycks2020AugMix_WRN"]
    assert (c["threat"], c["clean_acc"], c["robust_acc"], c["attacks"]) == ("corruptions", 0.9508, 0.8882, [])


def test_reference_rows_sorted_by_robust_accuracy():
    rows = reference_rows("Linf")
    accs = [r["robust_acc"] for r in rows]
    assert len(rows) == 99 and accs == sorted(accs, reverse=True)
    text = format_reference(rows[:3])
    assert "robustbench:Amini2024MeanSparse_S-WRN-94-16" in text.splitlines()[1]
    with pytest.raises(ValueError):
        reference_rows("L1")


@pytest.mark.skipif(not SHARED_MODEL_INFO.is_dir(), reason="shared/data/robustbench/model_info not present")
def test_shipped_table_is_a_rebuild_of_model_info(tmp_path):
    from symbench.cli import main

    out = tmp_path / "ref.jsonl"
    assert main(["robustbench", "build-reference", "--model-info", str(SHARED_MODEL_INFO),
                 "--commit", SHIPPED_COMMIT, "--out", str(out)]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created"} for r in rows]  # noqa: E731
    assert strip(read_rows(out)) == strip(read_rows(REFERENCE_PATH))


def test_build_reference_needs_a_commit(tmp_path):
    (tmp_path / "cifar10" / "Linf").mkdir(parents=True)
    info = {"clean_acc": "90.00", "autoattack_acc": "50.25", "eps": "8/255", "additional_data": False}
    (tmp_path / "cifar10" / "Linf" / "Toy2024.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="--commit"):
        build_reference(tmp_path)
    (row,) = build_reference(tmp_path, commit="abc123")
    assert row["model"] == "robustbench:Toy2024" and row["robust_acc"] == 0.5025 and row["unreliable"] is None
    with pytest.raises(ValueError, match="autoattack_acc"):
        info_to_row({"clean_acc": "90"}, name="X", threat="Linf", commit="abc")


def test_cli_list(capsys):
    from symbench.cli import main

    assert main(["robustbench", "list", "--threat", "L2", "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "autoattack" in lines[0] and lines[1].split()[1].startswith("robustbench:L2/")


# ---------------------------------------------------------------- robustbench:<Name> models

def test_import_robustbench_aliases_pyautoattack():
    from symbench.models.robustbench_compat import import_robustbench

    rb = import_robustbench()
    import pyautoattack

    assert sys.modules["autoattack"] is pyautoattack and sys.modules["autoattack.state"] is pyautoattack.state
    assert callable(rb.load_model)


@pytest.fixture(scope="module")
def rb_checkpoint(tmp_path_factory):
    """A random Ding2020MMA saved as RobustBench saves Carmon2019Unlabeled: {'state_dict': {'module.*': ...}}."""
    from symbench.models.robustbench_compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    torch.manual_seed(0)
    net = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf][SMALL]["model"]().eval()
    with torch.no_grad():  # non-trivial BN statistics so eval-mode logits depend on them
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model_dir = tmp_path_factory.mktemp("rb_models")
    path = model_dir / "cifar10" / "Linf" / f"{SMALL}.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = net(x)
    return model_dir, path, x, logits


def test_robustbench_model_loads_offline_with_same_logits(rb_checkpoint):
    from symbench.models.checkpoints import sha256_file
    from symbench.models.robustbench_zoo import load_robustbench_model

    model_dir, path, x, logits = rb_checkpoint
    model = load_robustbench_model(f"robustbench:{SMALL}", model_dir, download=False)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(x), logits, rtol=0, atol=0)
    card = model.card
    assert card.source == "robustbench" and card.name == f"robustbench:{SMALL}"
    assert card.sha256 == sha256_file(path) and card.checkpoint == str(path)
    assert card.params == sum(p.numel() for p in model.parameters())


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    from symbench.models import CheckpointError
    from symbench.models.robustbench_zoo import RobustBenchWeightsError, load_robustbench_model

    need = tmp_path / "cifar10" / "Linf" / f"{SMALL}.pt"
    with pytest.raises(RobustBenchWeightsError, match="downloading is off") as err:
        load_robustbench_model(f"robustbench:{SMALL}", tmp_path, download=False)
    assert str(need) in str(err.value) and isinstance(err.value, CheckpointError)

    import requests
    import robustbench.utils

    def offline(gdrive_id, fname):  # what gdown does without network, after creating a partial file
        Path(fname).write_bytes(b"partial")
        raise requests.ConnectionError("HTTPSConnectionPool(host='drive.google.com', port=443): Max retries")

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", offline)
    with pytest.raises(RobustBenchWeightsError, match="ConnectionError reaching drive.google.com") as err:
        load_robustbench_model(f"robustbench:{SMALL}", tmp_path)
    assert str(need) in str(err.value) and not need.exists()


class _Payload:  # any non-tensor object in a checkpoint needs full unpickling
    pass


def test_pickles_are_loaded_weights_only(rb_checkpoint, tmp_path, monkeypatch):
    from symbench.models.robustbench_zoo import TRUST_ENV, RobustBenchWeightsError, load_robustbench_model

    _, path, x, logits = rb_checkpoint
    state = torch.load(path, weights_only=True)
    bad = tmp_path / "cifar10" / "Linf" / f"{SMALL}.pt"
    bad.parent.mkdir(parents=True)
    torch.save({**state, "extra": _Payload()}, bad)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # a user's global opt-out does not reach us
    with pytest.raises(RobustBenchWeightsError, match="weights_only"):
        load_robustbench_model(SMALL, tmp_path, download=False)
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1" and "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ
    model = load_robustbench_model(SMALL, tmp_path, download=False, trust_pickles=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), logits, rtol=0, atol=0)


def test_unknown_names():
    from symbench.models import UnknownModelError
    from symbench.models.robustbench_zoo import load_robustbench_model, parse_name

    assert parse_name("robustbench:L2/Ding2020MMA").model_name == "robustbench:L2/Ding2020MMA"
    assert parse_name("robustbench:Standard").threat == "Linf"
    with pytest.raises(UnknownModelError, match="Ding2020MMA"):
        load_robustbench_model("robustbench:Ding2020MMX", download=False)
    with pytest.raises(UnknownModelError):
        parse_name("robustbench:L1/Standard")


def test_bench_runs_a_suite_on_a_robustbench_model(rb_checkpoint, tmp_path):
    from symbench.bench.run.evaluate import bench
    from symbench.bench.data import synthetic

    model_dir, path, _, _ = rb_checkpoint
    suite = tmp_path / "tiny.toml"
    suite.write_text('name = "tiny"\nversion = 1\nn = 4\nseed = 0\nbatch_size = 4\n'
                     '[[threats]]\nnorm = "linf"\neps = [0.03137254901960784]\n[[attacks]]\nname = "art_fgsm"\n')
    out = tmp_path / "rows.jsonl"
    rows = bench(f"robustbench:{SMALL}", str(suite), data=synthetic(n=4, seed=0, size=32), out=str(out),
                 store=str(tmp_path / "store"), device="cpu", progress=False, checks=False, model_dir=model_dir)
    (row,) = read_rows(out)
    assert rows[0]["model"] == row["model"] == f"robustbench:{SMALL}"
    assert row["source"] == "robustbench" and row["kind"] == "measured"
    from symbench.models.checkpoints import sha256_file

    assert row["ckpt_sha256"] == sha256_file(path)
