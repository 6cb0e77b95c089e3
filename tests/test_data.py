import numpy as np
import pytest
import torch

from symbench.bench.data import DataNotFoundError, content_hash, load_cifar10
from conftest import SHARED_DATA, needs_shared_data


def _write_npz(root, n=20, seed=0):
    g = np.random.default_rng(seed)
    x = g.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = g.integers(0, 10, size=n).astype(np.int64)
    (root / "cifar10").mkdir(parents=True)
    np.savez_compressed(root / "cifar10" / "test.npz", x=x, y=y)
    return x, y


def test_npz_directory_loads_as_unit_range_nchw(tmp_path):
    x, y = _write_npz(tmp_path)
    d = load_cifar10("test", tmp_path)
    assert d.x.shape == (20, 3, 32, 32) and d.x.dtype == torch.float32
    assert d.y.dtype == torch.int64 and torch.equal(d.y, torch.from_numpy(y))
    assert 0 <= d.x.min() and d.x.max() <= 1
    # pixel (0,0) of image 3, channel 1 survives the NHWC → NCHW transpose and /255
    assert d.x[3, 1, 0, 0].item() == pytest.approx(x[3, 0, 0, 1] / 255)
    assert d.sha256 == content_hash(x, y) and d.source.startswith("npz:")


def test_subsets_are_deterministic(tmp_path, monkeypatch):
    _write_npz(tmp_path)
    monkeypatch.setenv("SYMBENCH_DATA", str(tmp_path))
    first = load_cifar10("test", n=5)
    assert torch.equal(first.x, load_cifar10("test").x[:5])
    a, b = load_cifar10("test", n=5, sample_seed=1), load_cifar10("test", n=5, sample_seed=1)
    assert a.indices == b.indices and a.sha256 == b.sha256 and a.indices != tuple(range(5))
    with pytest.raises(ValueError):
        load_cifar10("test", n=0)


def test_missing_data_names_both_options(tmp_path, monkeypatch):
    monkeypatch.delenv("SYMBENCH_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10("test", tmp_path / "nowhere")
    msg = str(err.value)
    assert "--data-dir" in msg and "download" in msg


@needs_shared_data
def test_real_cifar10_is_the_official_test_set():
    d = load_cifar10("test", SHARED_DATA, n=10)
    assert d.y.tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    # first red-channel row of test image 0 (data README): 158 159 165 166 160 ...
    assert (d.x[0, 0, 0, :5] * 255).round().tolist() == [158, 159, 165, 166, 160]
