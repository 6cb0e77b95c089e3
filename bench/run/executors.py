"""Where ``bench`` jobs run: in this process (local) or fanned out over a Ray cluster (ray).

A job is one (model, suite). The Ray executor splits each job into example shards — contiguous runs
of the suite's fixed batches — and runs one task per shard (one GPU, or one CPU when the cluster has
no GPU). Each (threat, eps, batch) is seeded from its position only, so a shard computed anywhere
gives the same per-example record as the local runner. Tasks return their records to the driver,
which writes them into its store (no shared filesystem needed). When a job's shards are all back,
one more task takes the normal :func:`symbench.bench.run.evaluate.bench` path on a copy of that store: every
batch is found stored, so it only aggregates, runs the validity checks and the orbit column (~130 s
of CPU per paper run, which a CPU-only driver would serialize over every model), and returns the rows
and its new store files. The driver appends the rows: the local run's rows. See docs/scale-out.md.

Ray is imported only here and only by :class:`RayExecutor`, so nothing else pays for it.
"""
from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from symbench.paths import user_store

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass
class BenchJob:
    """One (model, suite) with the keyword arguments of :func:`symbench.bench.run.evaluate.bench`."""

    model_name: str
    suite_name: str
    kwargs: dict = field(default_factory=dict)


class LocalExecutor:
    """Runs jobs one after another in this process (what ``symbench bench`` always did)."""

    def bench(self, model_name: str, suite_name: str, **kwargs) -> list[dict]:
        """Same signature and rows as :func:`symbench.bench.run.evaluate.bench`."""
        [(_, rows)] = self.run([BenchJob(model_name, suite_name, kwargs)])
        return rows

    def run(self, jobs: Iterable[BenchJob]) -> Iterator[tuple[BenchJob, list[dict]]]:
        """Yields (job, rows) as each job finishes; rows are appended to ``out`` when the job gives one."""
        from symbench.bench.run.evaluate import bench

        for job in jobs:
            yield job, bench(job.model_name, job.suite_name, **job.kwargs)


@dataclass
class _Prepared:
    """Driver-side state of one job: what its shard and finishing tasks need."""

    job: BenchJob
    model_name: str
    model: object
    data: object
    key: str
    store_dir: Path          # the run's directory relative to the store root: <model>/<key>
    model_ref: object = None
    data_ref: object = None
    pending: set = field(default_factory=set)  # object refs of unfinished shard tasks
    n_shards: int = 0


class RayExecutor:
    """Fans jobs out over Ray as (model, suite, example-shard) tasks and merges them into the local rows.

    Args:
        address: Ray cluster address (``ray start --head`` prints it; ``auto`` joins the local node's
            cluster). None starts a local Ray unless one is already initialized in this process.
        shards: example shards per job (default: the cluster's GPU count, else its CPU count); never
            more than the job's missing batches.
        shared_store: workers write straight into ``store`` too (a path every node sees), so a shard
            killed half-way keeps its finished batches. Records still come back to the driver.
    """

    def __init__(self, address: str | None = None, shards: int | None = None, shared_store: bool = False):
        if shards is not None and shards < 1:
            raise ValueError(f"--shards must be >= 1, got {shards}")
        self.address, self.shards, self.shared_store = address, shards, shared_store
        self.submitted: list[tuple[str, str, list[int]]] = []  # (model, suite, batches) per shard task

    def bench(self, model_name: str, suite_name: str, **kwargs) -> list[dict]:
        """Same signature and rows as :func:`symbench.bench.run.evaluate.bench`, computed on the cluster."""
        [(_, rows)] = self.run([BenchJob(model_name, suite_name, kwargs)])
        return rows

    def _ray(self):
        try:
            import ray
        except ImportError as err:  # pragma: no cover - ray is in requirements.lock
            raise ValueError("--executor ray needs the ray package (pip install -r requirements.lock)") from err
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        return ray

    def run(self, jobs: Iterable[BenchJob]) -> Iterator[tuple[BenchJob, list[dict]]]:
        """Submit every job's shards at once; when a job's shards are all back, finish it on a worker.

        Yields (job, rows) as jobs finish; rows are appended to the job's ``out`` when it names one.
        """
        from symbench.bench.run.evaluate import bench
        from symbench.bench.run.runner import split_batches

        ray = self._ray()
        resources = ray.cluster_resources()
        use_gpu = resources.get("GPU", 0) >= 1
        workers = int(resources.get("GPU", 0) if use_gpu else resources.get("CPU", 1)) or 1
        opts = {"num_gpus": 1} if use_gpu else {"num_cpus": 1}
        shard_task = ray.remote(max_retries=1)(_run_shard).options(**opts)
        finish = ray.remote(max_retries=1)(_finish_job).options(**opts)
        log.info("ray: %d %s worker slot(s)", workers, "GPU" if use_gpu else "CPU")

        by_ref: dict = {}
        prepared: list[_Prepared] = []
        on_driver: list[BenchJob] = []
        for job in jobs:
            p = self._prepare(job)
            if p is None:  # not an attack suite: no batches to shard
                on_driver.append(job)
                continue
            suite, store, missing = p.pop("suite"), p.pop("store"), p.pop("missing")
            prep = _Prepared(job=job, **p)
            prepared.append(prep)
            k = min(self.shards or workers, len(missing))
            prep.model_ref, prep.data_ref = model_ref, data_ref = ray.put(prep.model), ray.put(prep.data)
            if k:
                num_classes = getattr(getattr(prep.model, "card", None), "num_classes", 10)
                store_root = str(store.dir.parents[1].resolve()) if self.shared_store else None
                for shard in split_batches(missing, k):
                    seed = {(g, b): r for b in shard for g in _groups(suite) if (r := store.get(g, b)) is not None}
                    ref = shard_task.remote(model_ref, suite, data_ref, prep.model_name, shard, seed,
                                            num_classes, use_gpu, store_root)
                    by_ref[ref] = prep
                    prep.pending.add(ref)
                    prep.n_shards += 1
                    self.submitted.append((prep.model_name, suite.id, shard))
                log.info("%s %s: %d missing batch(es) in %d shard task(s)", prep.model_name, suite.id, len(missing), k)

        for job in on_driver:  # while the cluster works on the shards
            log.info("%s on %s: suite kind is not sharded; running on the driver", job.suite_name, job.model_name)
            yield job, bench(job.model_name, job.suite_name, **job.kwargs)
        for prep in [p for p in prepared if not p.pending]:  # every batch already stored
            by_ref[self._submit_finish(finish, prep, use_gpu)] = prep
        while by_ref:
            done, _ = ray.wait(list(by_ref), num_returns=1)
            ref = done[0]
            prep = by_ref.pop(ref)
            if ref in prep.pending:  # a shard came back
                prep.pending.discard(ref)
                self._merge(prep, ray.get(ref))
                if not prep.pending:
                    by_ref[self._submit_finish(finish, prep, use_gpu)] = prep
            else:  # the job's finishing task came back
                yield prep.job, self._finished(prep, ray.get(ref))

    def _prepare(self, job: BenchJob) -> dict | None:
        """Load the suite, model and data on the driver and list the batches the store still lacks."""
        from symbench.bench.data import load_cifar10
        from symbench.bench.run.runner import suite_run_key
        from symbench.bench.run.store import Store
        from symbench.bench.suites import load_suite

        kw = job.kwargs
        suite = load_suite(job.suite_name).with_overrides(n=kw.get("n"), eps=kw.get("eps"),
                                                          batch_size=kw.get("batch_size"), seed=kw.get("seed"))
        if suite.kind != "attack":
            return None
        model_name, model = job.model_name, kw.get("model")
        if model is None:
            model_name, model = _load_model(model_name, kw.get("untrained", False), kw.get("model_dir"))
        data = kw.get("data")
        if data is None:
            data = load_cifar10("test", kw.get("data_dir"), n=suite.n)
        model = model.cpu()  # shipped through the object store; each worker moves it to its device
        key = suite_run_key(model, suite, data)
        store = Store(kw.get("store"), model_name, key)
        n_batches = math.ceil(len(data) / suite.batch_size)
        missing = [b for b in range(n_batches) if any(store.get(g, b) is None for g in _groups(suite))]
        return {"suite": suite, "store": store, "missing": missing, "model_name": model_name, "model": model,
                "data": data, "key": key, "store_dir": store.dir.relative_to(store.dir.parents[1])}

    def _merge(self, prep: _Prepared, result: dict) -> None:
        """Write a shard's records into the driver's store (never over a record already there)."""
        from symbench.bench.run.records import git_commit
        from symbench.bench.run.store import Store

        if result["key"] != prep.key:
            raise RuntimeError(f"shard of {prep.model_name} computed store key {result['key']}, the driver "
                               f"{prep.key}: the worker has other weights, data or suite")
        if result["commit"] != git_commit():
            log.warning("a worker runs commit %s, the driver %s: results may differ", result["commit"], git_commit())
        store = Store(prep.job.kwargs.get("store"), prep.model_name, prep.key)
        for (group, b), rec in result["records"].items():
            if store.get(group, b) is None:
                store.put(group, b, rec)
        log.info("%s %s: shard %d/%d back from %s (%d record(s))", prep.model_name, prep.job.suite_name,
                 prep.n_shards - len(prep.pending), prep.n_shards, result["device"], len(result["records"]))

    def _submit_finish(self, finish, prep: _Prepared, use_gpu: bool):
        """Launch the job's finishing task with the driver's store files of the run."""
        from symbench.bench.suites import SUITE_DIR

        kw = prep.job.kwargs
        root = Path(kw.get("store") or user_store())
        run_dir = root / prep.store_dir
        files = {str(f.relative_to(root)): f.read_text() for f in run_dir.rglob("*.json")}
        path = Path(prep.job.suite_name)
        if path.suffix != ".toml":
            path = SUITE_DIR / f"{prep.job.suite_name}.toml"
        overrides = {k: kw[k] for k in ("n", "eps", "batch_size", "seed", "checks") if k in kw}
        store_root = str(root.resolve()) if self.shared_store else None
        return finish.remote(prep.model_ref, prep.data_ref, (path.name, path.read_bytes()), prep.model_name,
                             overrides, files, use_gpu, store_root)

    def _finished(self, prep: _Prepared, result: dict) -> list[dict]:
        """Keep the finishing task's new store files (checks, orbit ...) and append its rows."""
        from symbench.bench.run.records import append_rows
        from symbench.bench.run.store import atomic_write_text

        kw = prep.job.kwargs
        root = Path(kw.get("store") or user_store())
        for rel, text in result["files"].items():
            if not (root / rel).is_file():
                atomic_write_text(root / rel, text)
        rows = result["rows"]
        if kw.get("out"):
            added = append_rows(kw["out"], rows)
            log.info("appended %d new row(s) to %s (%d already recorded)", added, kw["out"], len(rows) - added)
        return rows


def _load_model(name: str, untrained: bool, model_dir: str | None):
    """Build a model as :func:`symbench.bench.run.evaluate.bench` does (registry name, alias, defense or robustbench:)."""
    from symbench.models import create_model, resolve_name

    if name.startswith("robustbench:"):
        from symbench.models.robustbench_zoo import load_robustbench_model
        return name, load_robustbench_model(name, model_dir)
    name = resolve_name(name)
    return name, create_model(name, pretrained=not untrained)


def _groups(suite) -> list[str]:
    from symbench.bench.run.runner import suite_groups

    return suite_groups(suite)


def _finish_job(model, data, suite_file: tuple[str, bytes], model_name: str, overrides: dict, files: dict,
                use_gpu: bool, store_root: str | None) -> dict:
    """Ray task: the local bench path on a copy of the run's store; returns the rows and the new store files."""
    import torch

    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.store import atomic_write_text

    device = "cuda" if use_gpu else "cpu"
    if not use_gpu:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="symbench-finish-") as tmp:
        suite_path = Path(tmp) / "suite" / suite_file[0]  # same bytes, so the same suite sha256
        suite_path.parent.mkdir()
        suite_path.write_bytes(suite_file[1])
        root = Path(store_root or Path(tmp) / "store")
        for rel, text in files.items():
            if not (root / rel).is_file():
                atomic_write_text(root / rel, text)
        rows = bench(model_name, str(suite_path), model=model, data=data, store=str(root), out=None, device=device,
                     progress=False, **overrides)
        new = {str(f.relative_to(root)): f.read_text() for f in root.rglob("*.json")
               if str(f.relative_to(root)) not in files} if store_root is None else {}
    return {"rows": rows, "files": new}


def _run_shard(model, suite, data, model_name: str, batches: list[int], seed: dict, num_classes: int,
               use_gpu: bool, store_root: str | None) -> dict:
    """Ray task: compute ``batches`` of one run and return their records (runs on a worker)."""
    import torch

    from symbench.bench.run.records import device_string, git_commit
    from symbench.bench.run.runner import run_suite
    from symbench.bench.run.store import Store

    device = torch.device("cuda" if use_gpu else "cpu")
    if not use_gpu:
        torch.set_num_threads(1)  # one CPU per task: threads would only fight the other tasks
    with tempfile.TemporaryDirectory(prefix="symbench-shard-") as tmp:
        root = store_root or tmp
        if seed:  # the driver's records for these batches (e.g. the clean pass of a resumed run)
            from symbench.bench.run.runner import suite_run_key
            store = Store(root, model_name, suite_run_key(model, suite, data))
            for (group, b), rec in seed.items():
                if store.get(group, b) is None:
                    store.put(group, b, rec)
        computed: dict = {}
        _, key = run_suite(model, suite, data, model_name=model_name, store_root=root, device=device,
                           num_classes=num_classes, progress=False, batches=batches, computed=computed)
    return {"key": key, "records": computed, "commit": git_commit(), "device": device_string(device)}


def make_executor(name: str = "local", *, address: str | None = None, shards: int | None = None,
                  shared_store: bool = False):
    """The executor a ``--executor`` flag names."""
    if name == "local":
        if address or shards:
            log.warning("--address/--shards only apply to --executor ray; running locally")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, shards=shards, shared_store=shared_store)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
