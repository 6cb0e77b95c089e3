"""Shared fixtures: tiny synthetic data and a small CNN trained on it (CPU, seeded, seconds)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(1)  # small batches: 1 thread is fastest and immune to a busy machine

SHARED_DATA = Path(os.environ.get("SYMBENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "cifar10" / "test.npz").is_file(),
                                       reason=f"real CIFAR-10 not found at {SHARED_DATA} (../shared/data)")


@pytest.fixture(autouse=True, scope="session")
def _user_home(tmp_path_factory):
    """Every test's runs go to a throwaway $SYMBENCH_HOME, never the tester's own rows and store."""
    old = os.environ.get("SYMBENCH_HOME")
    os.environ["SYMBENCH_HOME"] = str(tmp_path_factory.mktemp("symbench_home"))
    yield
    if old is None:
        os.environ.pop("SYMBENCH_HOME", None)
    else:
        os.environ["SYMBENCH_HOME"] = old


# A small deterministic suite (no random starts): shared by runner and executor tests.
DET_SUITE = """
name = "det"
version = 1
n = 60
seed = 0
batch_size = 16
spot_check_n = 16       # the apgd_not_stronger check at a test-sized budget (default 64 examples, 100 iterations)
spot_check_iters = 20
[[threats]]
norm = "linf"
eps = [0.02, 0.05]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 5
random_init = 0
"""


class TinyCNN(nn.Module):
    """Small conv net for attack tests: [0,1] input, normalization inside, 10 logits."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.net((x - 0.5) / 0.25)


def make_data(n=200, seed=0, size=16):
    from symbench.bench.data import synthetic

    return synthetic(n=n, seed=seed, size=size)


def train_tiny(data, steps=150, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(model(data.x), data.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


INSTALL_BROWSER = "make browser"  # Debian/Ubuntu as root: apt-get install -y chromium; CI's .ci/run runs it first


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium for the page tests. A test never installs anything: a missing browser skips, naming
    the command that installs it."""
    from symbench.leaderboard import browser as lb_browser

    exe = lb_browser.find_chromium()
    if exe is None:
        pytest.skip(f"chromium is not installed; `{INSTALL_BROWSER}` installs it (apt-get install -y chromium, as root)")
    return exe


@pytest.fixture(scope="session")
def tiny_data():
    return make_data()


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    return train_tiny(tiny_data)
