"""Fan-out on Ray gives exactly the local executor's rows; refresh plans what is missing or stale."""
import json
from pathlib import Path

import pytest

from symbench.bench.run import evaluate as commands
from symbench.bench.run.executors import RayExecutor, make_executor
from symbench.bench.run.runner import shard_batches, split_batches
from symbench.leaderboard.refresh import plan_refresh
from symbench.bench.suites import load_suite

from conftest import DET_SUITE as SUITE
VOLATILE = {"wall_seconds", "created", "device"}  # timing and where it ran; everything else must match


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module; workers import ``conftest`` (TinyCNN) from tests/."""
    ray = pytest.importorskip("ray", reason="ray is not installed (see requirements.lock)")
    tests_dir = str(Path(__file__).resolve().parent)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": tests_dir, "OMP_NUM_THREADS": "1"}})
    except Exception as err:  # e.g. no /dev/shm or no free ports in a sandbox
        pytest.skip(f"local Ray cannot start here: {type(err).__name__}: {err}")
    yield ray
    ray.shutdown()


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "det.toml"
    p.write_text(SUITE)
    return str(p)


def _records(store: Path) -> dict:
    out = {}
    for f in sorted(store.rglob("b*.json")):
        rec = json.loads(f.read_text())
        rec.pop("seconds", None)
        out[str(f.relative_to(store))] = rec
    return out


def test_split_is_contiguous_and_covers_everything():
    assert split_batches([0, 1, 2, 3, 4], 3) == [[0, 1], [2, 3], [4]]
    assert sum(split_batches(list(range(7)), 7), []) == list(range(7))


def test_unknown_executor_fails_loudly():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("dask")


def test_ray_rows_equal_local_rows(ray_local, tiny_model, tiny_data, suite_path, tmp_path):
    kw = dict(model=tiny_model, data=tiny_data, progress=False)
    local = commands.bench("tiny", suite_path, store=str(tmp_path / "local"), out=str(tmp_path / "local.jsonl"), **kw)
    ex = RayExecutor(shards=3)
    fanned = ex.bench("tiny", suite_path, store=str(tmp_path / "ray"), out=str(tmp_path / "ray.jsonl"), **kw)

    assert sorted(b for _, _, shard in ex.submitted for b in shard) == list(range(13))  # 200 examples / 16
    assert len(ex.submitted) == 3
    strip = [{k: v for k, v in r.items() if k not in VOLATILE} for r in fanned]
    assert strip == [{k: v for k, v in r.items() if k not in VOLATILE} for r in local]
    assert local[1]["robust_acc"] < local[0]["robust_acc"]  # the suite did attack something
    assert _records(tmp_path / "ray") == _records(tmp_path / "local")  # per example, not just the means

    # workers writing straight into a store every node sees: same records, same rows
    shared = RayExecutor(shards=2, shared_store=True).bench("tiny", suite_path, store=str(tmp_path / "shared"),
                                                            out=None, **kw)
    assert [{k: v for k, v in r.items() if k not in VOLATILE} for r in shared] == strip
    assert _records(tmp_path / "shared") == _records(tmp_path / "local")

    # resume: a lost batch is the only work the next fan-out does
    lost = next((tmp_path / "ray").rglob("linf_0.05000000/b00002.json"))
    lost.unlink()
    again = RayExecutor(shards=3)
    rows = again.bench("tiny", suite_path, store=str(tmp_path / "ray"), out=None, **kw)
    assert [shard for _, _, shard in again.submitted] == [[2]]
    assert [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows] == strip


def _row(model, suite, eps, suite_sha, ckpt, n=60, seed=0):
    return {"model": model, "suite": suite, "threat": "linf", "eps": eps, "suite_sha256": suite_sha,
            "ckpt_sha256": ckpt, "n": n, "seed": seed, "variant": None}


def test_refresh_plans_missing_and_stale_pairs(suite_path):
    suite = load_suite(suite_path)
    sha = suite.sha256
    rows = [_row("a", "det", 0.02, sha, "A1"), _row("a", "det", 0.05, sha, "A1"),   # current
            _row("b", "det", 0.02, sha, "B0"), _row("b", "det", 0.05, sha, "B0"),   # old checkpoint
            _row("c", "det", 0.02, "old", "C1"), _row("c", "det", 0.05, "old", "C1"),  # old suite
            _row("d", "det", 0.02, sha, "D1")]                                       # eps 0.05 missing
    plan = plan_refresh(rows, {"a": "A1", "b": "B1", "c": "C1", "d": "D1", "e": "E1"}, {"det": suite})
    reasons = {m: why for m, _, why in plan}
    assert set(reasons) == {"b", "c", "d", "e"}
    assert "checkpoint" in reasons["b"] and "suite" in reasons["c"]
    assert "0.05" in reasons["d"] and reasons["e"] == "missing"


def test_refresh_with_another_n_wants_rows_of_that_n(suite_path):
    suite = load_suite(suite_path)
    rows = [_row("a", "det", 0.02, suite.sha256, "A1"), _row("a", "det", 0.05, suite.sha256, "A1")]
    assert plan_refresh(rows, {"a": "A1"}, {"det": suite}) == []
    small = suite.with_overrides(n=suite.n // 2)  # what `refresh --n` plans with
    [(_, _, why)] = plan_refresh(rows, {"a": "A1"}, {"det": small})
    assert f"n={suite.n // 2}" in why


def test_refresh_dry_run_lists_without_running(tmp_path, capsys):
    from symbench.cli import main
    from symbench.leaderboard.refresh import trained_models

    models = trained_models()
    if not models:
        pytest.skip("no trained checkpoint shipped")
    name = sorted(models)[0]
    rows = tmp_path / "rows.jsonl"
    argv = ["leaderboard", "refresh", "--dry-run", "--rows", str(rows), "--models", name, "--suites", "quick"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "would run 1 model × suite pair(s)" in out and name in out and "missing" in out
    assert not rows.exists()

    assert main(argv + ["--plain"]) == 0  # what examples/slurm/submit_all.sh reads
    assert capsys.readouterr().out == f"{name} quick\n"
    assert not rows.exists()


def test_shard_batches_partition_every_batch_once_and_parse_refuses_nonsense():
    shards = [shard_batches(200, 16, (i, 3)) for i in range(3)]
    assert shards == [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]  # 13 batches
    assert shard_batches(20, 16, (3, 4)) == []  # more shards than batches: the extra ones idle
    assert commands.parse_shard("2/16") == (2, 16)
    for bad in ["16/16", "-1/4", "3", "a/b", "1/0"]:
        with pytest.raises(ValueError, match="--shard"):
            commands.parse_shard(bad)


def test_slurm_style_shards_then_plain_run_give_the_local_rows(tiny_model, tiny_data, suite_path, tmp_path,
                                                               monkeypatch):
    """``--shard i/K`` jobs fill one store independently; the ordinary run then only aggregates."""
    kw = dict(model=tiny_model, data=tiny_data, progress=False)
    local = commands.bench("tiny", suite_path, store=str(tmp_path / "local"), out=None, **kw)
    for i in (2, 0, 1):  # any order, as an array's tasks finish
        assert commands.bench("tiny", suite_path, store=str(tmp_path / "shared"), out=str(tmp_path / "rows.jsonl"),
                              shard=(i, 3), **kw) == []
    assert not (tmp_path / "rows.jsonl").exists()  # shards write records, never rows
    # the checks (and the spot check's stored cascades) run at merge time, never in a shard
    attacks_only = {k: v for k, v in _records(tmp_path / "local").items() if "/checks/" not in k and "/spot_" not in k}
    assert _records(tmp_path / "shared") == attacks_only  # per example, every batch, before any merge

    from symbench.bench.run import runner
    def no_attacks(*a, **k):
        raise AssertionError("the merge step recomputed a batch the shards had stored")
    monkeypatch.setattr(runner, "_attack_batch", no_attacks)
    merged = commands.bench("tiny", suite_path, store=str(tmp_path / "shared"), out=str(tmp_path / "rows.jsonl"),
                            **kw)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]  # noqa: E731
    assert strip(merged) == strip(local)
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == len(local)


def test_shard_refuses_a_suite_without_batches(tiny_model, tiny_data, tmp_path):
    with pytest.raises(ValueError, match="no example batches to shard"):
        commands.bench("tiny", "clever", model=tiny_model, data=tiny_data, store=str(tmp_path), shard=(0, 2),
                       progress=False)


def test_refresh_publish_escalates_and_publishes_each_pair_with_its_outcomes(suite_path, tmp_path, monkeypatch):
    """``refresh --publish`` goes through publish_rows (outcomes attached, flagged rows refused unescalated) pair by
    pair, running each with escalation unless --no-escalate; it never appends to the board behind its back."""
    from symbench.bench.run import executors
    from symbench.leaderboard import publish, refresh as R

    monkeypatch.setattr(R, "trained_models", lambda models="*": {"a": "A1", "b": "B1"})
    ran, published = [], []

    class Fake:
        def run(self, jobs):
            for job in jobs:
                ran.append(job.kwargs)
                yield job, [{"model": job.model_name}]

    monkeypatch.setattr(executors, "make_executor", lambda *a, **k: Fake())
    monkeypatch.setattr(publish, "publish_rows", lambda rows, board, store=None: published.append((rows, board)))
    board = tmp_path / "board.jsonl"
    plan = R.refresh(suites=[suite_path], rows=board, publish=True)
    assert [m for m, _, _ in plan] == ["a", "b"]
    assert all(k["escalate"] is True and k["out"] is None for k in ran)
    assert published == [([{"model": "a"}], board), ([{"model": "b"}], board)]
    ran.clear()
    R.refresh(suites=[suite_path], rows=board, publish=True, escalate=False)
    assert all(k["escalate_skipped"] == "--no-escalate" and "escalate" not in k for k in ran)
    ran.clear()
    R.refresh(suites=[suite_path], rows=tmp_path / "mine.jsonl")           # a user's refresh: unchanged
    assert all(k["out"] == tmp_path / "mine.jsonl" and "escalate" not in k for k in ran)
