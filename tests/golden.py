"""Golden rows: tiny deterministic runs of ``bench()`` over every stage and suite kind, minus volatile fields.

``tests/data/golden_rows.json`` holds the rows ``bench()`` wrote before its stages were split into objects
(issue 24); ``test_stages.py`` recomputes them and compares them field by field, key order included. When a
row is *meant* to change (a new check version, a new field), regenerate the file and say why in the commit:

    .venv/bin/python tests/golden.py --write

Every case runs on a small CNN trained for seconds on synthetic 32x32 images, at n <= 32 and toy budgets.
Its weights are a fixture too (``golden_model.safetensors``, written by ``--write``): training on another
CPU (AMD vs Intel kernels) rounds differently, which changes the weights' hash, hence every row's
``ckpt_sha256`` and ``store_key``, and the last digits of the float fields. Inference on the same weights
still rounds a little differently across CPUs, so floats are compared to a relative 1e-4
(:func:`same`), and everything else (counts, accuracies to the example, verdicts, keys) exactly.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_data, train_tiny  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "data" / "golden_rows.json"
MODEL_FIXTURE = FIXTURE.with_name("golden_model.safetensors")
# what differs between two identical runs (time, machine, checkout) and nothing else
VOLATILE = ("created", "commit", "wall_seconds", "device")
VOLATILE_NESTED = {"escalation": ("seconds",), "clever": ("seconds_per_image",)}

SUITES = {
    # attack kind: checks (spot check included), two eps, and the orbit column at one of them
    "g_attack": """
name = "g_attack"
version = 1
n = 24
seed = 0
batch_size = 16
checks_m = 8
spot_check_n = 8
spot_check_iters = 5
[[threats]]
norm = "linf"
eps = [0.02, 0.05]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 3
random_init = 0
[orbit]
n = 8
eps = [0.05]
attack = "ta_pgd"
steps = 2
""",
    # a defended model: base reference, paired gains, and escalation (transfer from the base)
    "g_defended": """
name = "g_defended"
version = 1
n = 16
seed = 0
batch_size = 16
checks_m = 8
spot_check_n = 8
spot_check_iters = 5
base_reference = true
[[threats]]
norm = "linf"
eps = [0.06]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 3
""",
    "g_clever": """
name = "g_clever"
version = 1
kind = "clever"
n = 3
seed = 3
batch_size = 16
norms = ["linf"]
nb_batches = 4
sample_batch_size = 4
pool_factor = 2
""",
    "g_corruptions": """
name = "g_corruptions"
version = 1
kind = "corruptions"
n = 8
seed = 0
batch_size = 8
source = "generated"
corruptions = ["gaussian_noise", "contrast"]
severities = [2]
""",
    "g_corrupted_adv": """
name = "g_corrupted_adv"
version = 1
kind = "corrupted_adv"
n = 8
seed = 0
batch_size = 8
source = "generated"
corruptions = ["fog"]
severities = [3]
[[threats]]
norm = "linf"
eps = [0.02]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 2
""",
}


def strip(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    for k, drop in VOLATILE_NESTED.items():
        if isinstance(out.get(k), dict):
            out[k] = {kk: vv for kk, vv in out[k].items() if kk not in drop}
    return json.loads(json.dumps(out))


def compute(tmp: Path) -> dict[str, list[dict]]:
    """Run every case into ``tmp`` (suites, store, cache); returns {case: stripped rows}."""
    from symbench.bench.run.evaluate import bench
    from symbench.models.defenses import QuantizeDefense

    torch.set_num_threads(1)
    tmp = Path(tmp)
    for name, text in SUITES.items():
        (tmp / f"{name}.toml").write_text(text)
    model = golden_model()
    store = str(tmp / "store")
    kw = dict(store=store, progress=False, device="cpu")
    out = {}
    out["attack"] = bench("tiny", str(tmp / "g_attack.toml"), model=model, data=make_data(n=24, size=32),
                          **kw)
    out["defended_escalated"] = bench("tiny+quantize_defense", str(tmp / "g_defended.toml"),
                                      model=QuantizeDefense(model, levels=5).eval(),
                                      data=make_data(n=16, size=32), escalate=True, **kw)
    out["unchecked"] = bench("tiny", str(tmp / "g_defended.toml"), model=model, data=make_data(n=16, size=32),
                             checks=False, **kw)
    out["clever"] = bench("tiny", str(tmp / "g_clever.toml"), model=model, data=make_data(n=3, size=32), **kw)
    cdata = make_data(n=8, size=32)
    out["corruptions"] = bench("tiny", str(tmp / "g_corruptions.toml"), model=model, data=cdata, **kw)
    out["corrupted_adv"] = bench("tiny", str(tmp / "g_corrupted_adv.toml"), model=model, data=cdata, **kw)
    return {k: [strip(r) for r in rows] for k, rows in out.items()}


def golden_model(train: bool = False) -> torch.nn.Module:
    """The cases' CNN: the fixture's weights (any CPU gives the same model), or trained and saved with ``train`` (--write)."""
    from safetensors.torch import load_file, save_file

    from conftest import TinyCNN

    if train:
        model = train_tiny(make_data(n=200, size=32), steps=100)
        save_file(model.state_dict(), str(MODEL_FIXTURE))
        return model
    model = TinyCNN()
    model.load_state_dict(load_file(str(MODEL_FIXTURE)))
    return model.eval()


def same(got, want, rel: float = 1e-4, abs_: float = 1e-7) -> bool:
    """Equal, except that floats may differ by float rounding (other CPUs' kernels); nested dicts and lists too."""
    import math

    if isinstance(want, float) and isinstance(got, (float, int)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)
    if isinstance(want, dict) and isinstance(got, dict):
        return list(got) == list(want) and all(same(got[k], want[k], rel, abs_) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same(g, w, rel, abs_) for g, w in zip(got, want))
    return type(got) is type(want) and got == want


if __name__ == "__main__":
    import tempfile

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/golden.py --write   (regenerates tests/data/golden_rows.json)")
    FIXTURE.parent.mkdir(exist_ok=True)
    golden_model(train=True)
    with tempfile.TemporaryDirectory() as d:
        got = compute(Path(d))
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(got, indent=1) + "\n")
    print(f"wrote {sum(map(len, got.values()))} rows of {len(got)} cases to {FIXTURE}")
