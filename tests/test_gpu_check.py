"""The GPU check script: refuses cleanly without CUDA, and counts flipped outcomes correctly."""
import pytest
import torch

from bench.perf.gpu_check import compare_stores, main
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
