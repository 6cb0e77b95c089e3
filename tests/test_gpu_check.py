"""The GPU check script: refuses cleanly without CUDA, and counts flipped outcomes correctly."""
import pytest
import torch

from symbench.bench.perf.gpu_check import compare_stores, main
from conftest import SHARED_DATA, needs_shared_data


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would really run")
def test_without_cuda_it_exits_2_with_a_message(capsys):
    assert main(["--skip-perf"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_compare_stores_counts_only_records_both_sides_hold():
    cpu = {"clean/b00000.json": [True, True, False], "linf/b00000.json": [True, False, False],
           "linf/b00001.json": [True]}
    gpu = {"clean/b00000.json": [True, True, False], "linf/b00000.json": [False, False, False]}
    assert compare_stores(cpu, gpu) == (1, 6)


@needs_shared_data
def test_the_whole_check_runs_with_the_cpu_standing_in_for_the_gpu(capsys):
    """Same device twice: every per-example outcome must agree, and the script must say so and pass."""
    assert main(["--device", "cpu", "--n", "32", "--skip-perf", "--skip-train", "--data-dir", str(SHARED_DATA)]) == 0
    out = capsys.readouterr().out
    assert "0 of " in out and "outcomes differ" in out and "speed-up S" in out


def test_device_bundle_pins_what_ci_tests_and_data_reads_back(tmp_path):
    """The bundle's toolkits are the lock file's versions, and its data subset loads like ../shared/data."""
    from importlib import metadata

    import numpy as np

    from symbench.bench.data import load_cifar10
    from symbench.bench.perf.device_bundle import NEEDED, pinned, subset_data

    specs = pinned()
    assert [s.split("==")[0] for s in specs] == list(NEEDED)
    for spec in specs:  # the venv CI runs in was installed from the same lock
        name, version = spec.split("==")
        assert metadata.version(name) == version, spec
    src = tmp_path / "src"
    (src / "cifar10").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("test", "train"):
        np.savez_compressed(src / "cifar10" / f"{split}.npz", x=rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8),
                            y=rng.integers(0, 10, 30))
    subset_data(src, tmp_path / "dev", 12)
    full, sub = load_cifar10("train", src), load_cifar10("train", tmp_path / "dev")
    assert len(sub.y) == 12 and torch.equal(sub.x, full.x[:12]) and torch.equal(sub.y, full.y[:12])


def test_device_bundle_drops_the_example_model_from_pyautoattack(tmp_path):
    import zipfile

    from symbench.bench.perf.device_bundle import unpack

    whl = tmp_path / "pyautoattack-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pyautoattack/__init__.py", "")
        z.writestr("pyautoattack/examples/model_test.pt", b"\0" * 1000)
    unpack([whl], tmp_path / "site")
    assert (tmp_path / "site/pyautoattack/__init__.py").is_file()
    assert not (tmp_path / "site/pyautoattack/examples").exists()
