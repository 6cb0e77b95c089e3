"""The Python API and the CLI's conventions, on a tiny model and synthetic data (seconds)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

import symbench
from conftest import DET_SUITE, TinyCNN
from symbench.cli import build_parser, eps_value, main


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "det.toml"
    p.write_text(DET_SUITE)
    return str(p)


def test_benchmark_takes_any_module_and_returns_a_frame_with_intervals(tiny_model, tiny_data, suite_path, tmp_path):
    rows = tmp_path / "rows.jsonl"
    df = symbench.benchmark(tiny_model, suite_path, data=tiny_data, rows=rows, store=tmp_path / "store",
                            checks=False, progress=False)
    assert list(df["eps"]) == [0.02, 0.05] and set(df["model"]) == {"custom:TinyCNN"}
    assert (df["robust_low"] <= df["robust_acc"]).all() and (df["robust_acc"] <= df["robust_high"]).all()
    assert (df["robust_acc"] <= df["clean_acc"]).all() and df.loc[1, "robust_acc"] < df.loc[0, "clean_acc"]
    assert df.loc[0, "acc_after:art_fgsm"] >= df.loc[0, "robust_acc"]      # cumulative per-attack columns
    assert len(df.attrs["rows"]) == 2 and len(df.attrs["rows"][0]["code_sha256"]) == 64  # its code, in the row
    again = symbench.results(path=rows)                                      # what was appended reads back
    assert list(again["robust_acc"]) == list(df["robust_acc"])
    assert symbench.results(model="nothing*", path=rows).empty


def test_benchmark_refuses_a_model_in_train_mode_before_any_compute(tiny_data, suite_path, tmp_path):
    with pytest.raises(ValueError, match="train mode"):
        symbench.benchmark(TinyCNN(), suite_path, data=tiny_data, rows=False, store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_runs_go_to_the_user_directory_by_default(tiny_model, tiny_data, suite_path):
    from symbench.paths import home

    symbench.benchmark(tiny_model, suite_path, data=tiny_data, checks=False, progress=False, name="tiny_home")
    assert "tiny_home" in set(symbench.results()["model"])
    assert (home() / "store" / "tiny_home").is_dir()


def test_compare_pairs_the_stored_outcomes(tiny_model, tiny_data, suite_path, tmp_path):
    rows, store = tmp_path / "rows.jsonl", tmp_path / "store"
    kw = dict(data=tiny_data, rows=rows, store=store, checks=False, progress=False)
    symbench.benchmark(tiny_model, suite_path, name="tiny_a", **kw)
    torch.manual_seed(1)
    symbench.benchmark(TinyCNN().eval(), suite_path, name="tiny_b", **kw)   # untrained: far less accurate
    df = symbench.compare("tiny_a", "tiny_b", suite="det", rows=rows, store=store, metric="clean")
    assert len(df) == 2 and (df["n"] == 200).all()
    assert (df["diff"] > 0.3).all() and (df["p_value"] < 1e-6).all() and df["significant"].all()
    assert "better than" in df.attrs["sentences"][0]
    same = symbench.compare("tiny_a", "tiny_a", suite="det", rows=rows, store=store)
    assert (same["p_value"] == 1.0).all() and "No significant difference" in same.attrs["sentences"][0]


def test_compare_refuses_rows_run_on_different_examples(tiny_model, tiny_data, suite_path, tmp_path):
    from symbench.bench.data import ImageData

    rows, store = tmp_path / "rows.jsonl", tmp_path / "store"
    kw = dict(rows=rows, store=store, checks=False, progress=False)
    symbench.benchmark(tiny_model, suite_path, data=tiny_data, name="tiny_a", **kw)
    other = ImageData(tiny_data.x.flip(0), tiny_data.y.flip(0), "synthetic-flipped", "", "test")
    symbench.benchmark(tiny_model, suite_path, data=other, name="tiny_c", **kw)
    with pytest.raises(ValueError, match="different examples"):
        symbench.compare("tiny_a", "tiny_c", suite="det", rows=rows, store=store)


def test_publish_refuses_a_smaller_n_than_the_suite_before_any_compute(capsys, tmp_path):
    code = main(["bench", "--model", "cascaded", "--n", "50", "--publish", "--board", str(tmp_path / "b.jsonl")])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert not (tmp_path / "b.jsonl").exists()


def test_every_flag_has_help_and_eps_flags_take_fractions():
    def walk(p):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from walk(sub)
    missing = [f"{p.prog} {'/'.join(a.option_strings) or a.dest}" for p in walk(build_parser()) for a in p._actions
               if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert not missing, missing
    assert eps_value("8/255") == pytest.approx(8 / 255) and eps_value("0.5") == 0.5
    for bad in ("8", "-1/255", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            eps_value(bad)


def test_list_formats_parse_and_a_pattern_matching_nothing_exits_1(capsys):
    assert main(["list", "cascaded*", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in got} >= {"cascaded4", "cascaded10"}
    assert main(["list", "cascaded*", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("model,family,group")
    assert main(["list", "cascadd4"]) == 1 and "Did you mean: cascaded4" in capsys.readouterr().err
    assert main(["bench", "--model", "cascaded", "--n", "0"]) == 2
    assert main(["bench", "--model", "cascaded", "--batch-size", "-1"]) == 2


def test_output_into_a_closed_pipe_is_quiet():
    code = "import sys; from symbench.cli import main; sys.exit(main(['attacks']))"
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_the_cli_reports_a_defense_gain_as_paired_with_its_verdict():
    from symbench.cli import _details

    row = {"model": "m+equi_defense", "robust_acc": 0.29, "base_model": "m", "base_clean_acc": 0.6,
           "base_robust_acc": 0.27, "n": 100}
    assert "+0.020 [" in _details([row]) and "unpaired, Newcombe: no significant gain" in _details([row])
    row["defense_gain"] = {"diff": 0.02, "low": -0.03, "high": 0.07, "p_value": 0.5, "significant": False}
    assert "+0.020 [-0.030, +0.070], McNemar p=0.5: no significant gain" in _details([row])
    row["defense_gain"].update(low=0.01, p_value=0.01, significant=True)
    assert "p=0.01: significant" in _details([row])


# ------------------------------------------------------------------------------------------------
# RobustBench's and timm's habits (issue 25)
# ------------------------------------------------------------------------------------------------

TWO_THREATS = DET_SUITE.replace('name = "det"', 'name = "det2"') + '[[threats]]\nnorm = "l2"\neps = [0.5]\n'


def test_a_positional_int_is_one_clear_line_naming_n_examples(tiny_model, tmp_path):
    with pytest.raises(TypeError, match=r"n_examples=100 \(RobustBench's name\) or n=100"):
        symbench.benchmark(tiny_model, 100, store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_robustbench_argument_names_run_with_robustbench_meaning(tiny_model, tiny_data, tmp_path):
    suite = tmp_path / "det2.toml"
    suite.write_text(TWO_THREATS)
    import numpy as np

    (tmp_path / "data" / "cifar10").mkdir(parents=True)   # a data dir, so n_examples picks the first 16 images
    x8 = (tiny_data.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "data" / "cifar10" / "test.npz", x=x8, y=tiny_data.y.numpy())
    kw = dict(data_dir=tmp_path / "data", rows=False, store=tmp_path / "store", checks=False, progress=False)
    df = symbench.benchmark(tiny_model, str(suite), n_examples=16, dataset="cifar10", threat_model="L2",
                            eps=[0.25, 0.5], model_name="tiny_rb", **kw)
    assert list(df["threat"]) == ["l2", "l2"] and list(df["eps"]) == [0.25, 0.5]   # only the chosen threat
    assert set(df["n"]) == {16} and set(df["model"]) == {"tiny_rb"}
    df = symbench.benchmark(tiny_model, str(suite), n_examples=16, threat_model="Linf", **kw)
    assert list(df["threat"]) == ["linf", "linf"] and list(df["eps"]) == [0.02, 0.05]  # the suite's eps for it
    with pytest.raises(ValueError, match=r'say which the eps belong to: threat_model="Linf"'):
        symbench.benchmark(tiny_model, str(suite), eps=[1 / 255, 2 / 255], **kw)


@pytest.mark.parametrize("kw, err, match", [
    (dict(dataset="cifar100"), ValueError, "CIFAR-10 only"),
    (dict(threat_model="Linf2"), ValueError, '"Linf", "L2" or "corruptions"'),
    (dict(threat_model="L2", suite="quick"), ValueError, "suite 'quick' has no l2 threat"),
    (dict(n=10, n_examples=20), TypeError, "the same argument twice"),
    (dict(to_disk=True), TypeError, "RobustBench's to_disk= has no counterpart"),
    (dict(bogus=1), TypeError, "unexpected keyword argument 'bogus'"),
    (dict(eps="8/255"), TypeError, "eps must be a number"),
])
def test_bad_robustbench_style_arguments_fail_before_any_compute(tiny_model, tmp_path, kw, err, match):
    with pytest.raises(err, match=match):
        symbench.benchmark(tiny_model, store=tmp_path / "store", rows=False, **kw)
    assert not (tmp_path / "store").exists()


def test_load_model_takes_and_checks_robustbench_arguments(tmp_path):
    m = symbench.load_model("cascaded", dataset="cifar10", threat_model="Linf")
    assert m.card.name == "cascaded4" and not m.training
    with pytest.raises(ValueError, match="CIFAR-10 only"):
        symbench.load_model("cascaded4", dataset="imagenet")
    with pytest.raises(TypeError, match="no architecture argument"):
        symbench.load_model("cascaded4", widht=8)
    with pytest.raises(FileNotFoundError, match="no cascaded4.safetensors there"):
        symbench.load_model("cascaded4", model_dir=tmp_path)
    from symbench.models.registry import checkpoint_path

    import shutil
    shutil.copy(checkpoint_path(m.card), tmp_path / "cascaded4.safetensors")
    again = symbench.load_model(model_name="cascaded4", model_dir=tmp_path)  # RobustBench's keyword, own folder
    assert again.card.sha256 == m.card.sha256 and again.card.checkpoint == str(tmp_path / "cascaded4.safetensors")


def test_timm_habits_create_model_at_the_top_and_list_models_resolves_aliases():
    assert symbench.list_models("cascaded") == ["cascaded4"]          # the alias load_model resolves
    assert symbench.list_models("cascaded*") == symbench.list_models("cascaded*[0-9]*")
    m = symbench.create_model("cascaded")
    assert m.card.name == "cascaded4" and m.card.sha256 is None        # random weights, like timm
    assert "create_model" in dir(symbench)


def test_import_robustbench_works_after_the_documented_one_liner():
    code = "import symbench.compat\nimport robustbench\nfrom robustbench.utils import load_model\nprint('ok')"
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-1500:]
