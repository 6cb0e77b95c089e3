import json

import pytest
import torch

from symbench.bench.run import evaluate as commands
from symbench.bench.attacks import create_attack
from symbench.cli import main
from symbench.bench.run.records import read_rows
from symbench.bench.suites import load_suite
from conftest import DET_SUITE

DETERMINISTIC_SUITE = DET_SUITE + """[[attacks]]
name = "ta_pgd"
steps = 10
step_factor = 1.5
random_start = false
"""


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "det.toml"
    p.write_text(DETERMINISTIC_SUITE)
    return p


def _bench(model, data, suite_path, tmp_path, out="rows.jsonl", **kw):
    return commands.bench("tiny", str(suite_path), model=model, data=data, store=str(tmp_path / "store"),
                          out=str(tmp_path / out) if out else None, progress=False, **kw)


def test_cascade_equals_per_example_minimum_of_separate_runs(tiny_model, tiny_data, suite_path, tmp_path):
    data = tiny_data
    rows = _bench(tiny_model, data, suite_path, tmp_path)
    suite = load_suite(str(suite_path))
    for row, eps in zip(rows, suite.threats[0].eps):
        robust = (tiny_model(data.x).argmax(1) == data.y)
        for spec in suite.attacks:  # each attack on ALL examples, separately
            adv = spec.build("linf")(tiny_model, data.x, data.y, eps, seed=0)
            with torch.no_grad():
                robust &= tiny_model(adv).argmax(1) == data.y
        assert row["robust_acc"] == pytest.approx(robust.float().mean().item())
        accs = [a["acc_after"] for a in row["attacks"]]
        assert accs == sorted(accs, reverse=True) and accs[-1] == row["robust_acc"]
        assert row["clean_acc"] >= accs[0]
    assert rows[0]["robust_acc"] > rows[1]["robust_acc"]  # larger eps, lower accuracy


def test_killed_run_resumes_to_identical_rows_without_duplicates(tiny_model, tiny_data, suite_path, tmp_path,
                                                                 monkeypatch):
    reference = _bench(tiny_model, tiny_data, suite_path, tmp_path / "ref")
    from symbench.bench.attacks import art_adapter

    real_run, calls = art_adapter.ARTPGD.run, {"n": 0}

    def dying_run(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_run(self, *a, **k)

    monkeypatch.setattr(art_adapter.ARTPGD, "run", dying_run)
    with pytest.raises(KeyboardInterrupt):
        _bench(tiny_model, tiny_data, suite_path, tmp_path)
    assert not (tmp_path / "rows.jsonl").exists()  # nothing half-written
    monkeypatch.setattr(art_adapter.ARTPGD, "run", real_run)
    resumed = _bench(tiny_model, tiny_data, suite_path, tmp_path)
    _bench(tiny_model, tiny_data, suite_path, tmp_path)  # a second complete run appends nothing
    keys = ["clean_acc", "robust_acc", "attacks", "n", "eps", "ckpt_sha256", "suite_id", "data_sha256"]
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in reference]
    assert len(read_rows(tmp_path / "rows.jsonl")) == 2


class WrongShape(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :7]


class NaNLogits(torch.nn.Module):
    def forward(self, x):
        return torch.full((len(x), 10), float("nan"))


@pytest.mark.parametrize("model,match", [(WrongShape(), "logits"), (NaNLogits(), "NaN")])
def test_broken_models_fail_before_anything_is_written(model, match, tiny_data, suite_path, tmp_path):
    with pytest.raises(ValueError, match=match):
        _bench(model.eval(), tiny_data, suite_path, tmp_path)
    assert not (tmp_path / "rows.jsonl").exists()


def test_train_mode_model_is_refused(tiny_data, suite_path, tmp_path):
    from conftest import TinyCNN

    with pytest.raises(ValueError, match="train mode"):
        _bench(TinyCNN().train(), tiny_data, suite_path, tmp_path)


def test_out_of_device_memory_names_the_batch_and_the_fix(tiny_model, tiny_data, suite_path, tmp_path, monkeypatch):
    from symbench.bench.run import runner

    real, calls = runner._attack_batch, []

    def oom_on_third(*a, **k):  # batches 0 and 1 fit, batch 2 does not
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)

    monkeypatch.setattr(runner, "_attack_batch", oom_on_third)
    with pytest.raises(MemoryError, match=r"batch 2 \(16 images\).*--batch-size \(e.g. 8\)"):
        _bench(tiny_model, tiny_data, suite_path, tmp_path)
    assert len(list((tmp_path / "store").rglob("linf_*/b*.json"))) == 2  # what fitted is kept
    assert not (tmp_path / "rows.jsonl").exists()


def test_ctrl_c_says_how_to_resume_instead_of_a_traceback(monkeypatch, tmp_path, capsys):
    import symbench.bench.run.evaluate as commands
    from symbench.cli import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "bench", interrupted)
    try:
        rc = main(["bench", "--model", "baseline_cnn4", "--store", str(tmp_path / "s"), "--out", ""])
    except KeyboardInterrupt:  # escaping here would stop the whole pytest session, not fail this test
        pytest.fail("Ctrl-C escaped the CLI as a traceback")
    err = capsys.readouterr().err
    assert rc == 130 and "run the same command again to resume" in err and str(tmp_path / "s") in err


@pytest.mark.parametrize("argv,match", [
    (["--model", "nosuchmodel"], "unknown model"),
    (["--model", "baseline_cnn4", "--suite", "nosuchsuite"], "unknown suite"),
    (["--model", "baseline_cnn4", "--eps", "-0.1"], ">= 0"),
    (["--model", "baseline_cnn4", "--eps", "8"], "0-255"),
])
def test_cli_bad_input_exits_nonzero_with_a_clear_message(argv, match, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    code = main(["bench", *argv, "--out", str(out), "--untrained", "--no-progress"])
    assert code != 0
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_unknown_attack_in_a_suite_file_is_refused(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(DETERMINISTIC_SUITE.replace('name = "art_fgsm"', 'name = "art_fgsn"'))
    from symbench.bench.attacks import UnknownAttackError

    with pytest.raises(UnknownAttackError, match="art_fgsm"):
        load_suite(str(p))


def test_rows_carry_provenance_and_validate(tiny_model, tiny_data, suite_path, tmp_path):
    rows = _bench(tiny_model, tiny_data, suite_path, tmp_path)
    r = read_rows(tmp_path / "rows.jsonl")[0]
    assert r == json.loads(json.dumps(rows[0]))
    for field in ["ckpt_sha256", "suite_id", "data_sha256", "toolkits", "n_forward", "n_backward", "device", "seed"]:
        assert r[field] not in (None, "", {})
    assert r["n_backward"] > 0 and r["toolkits"]["adversarial-robustness-toolbox"] == "1.20.1"
