"""Run design points on a local process pool or a Dask cluster, with a progress bar.

Both executors evaluate the same chunks with the same function, so they give the same rows; rows
come back in point order whatever order the chunks finish in. ``on_rows`` sees every chunk as it
finishes, so the caller can persist it before the next one arrives.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, Literal

from tqdm import tqdm

from archsim.dse.evaluate import evaluate_points
from archsim.dse.space import DesignPoint
from archsim.errors import ArchsimError

Rows = list[dict[str, Any]]
RowsCallback = Callable[[Sequence[DesignPoint], Rows], None]
ExecutorName = Literal["local", "dask"]


def _chunks(points: Sequence[DesignPoint], size: int) -> list[Sequence[DesignPoint]]:
    return [points[i : i + size] for i in range(0, len(points), size)]


def _chunk_size(n_points: int, workers: int) -> int:
    # several chunks per worker keep the bar moving and balance load; each chunk still amortises
    # the per-task overhead (pickling configs, a lowering per distinct workload) over many points
    return max(1, min(256, n_points // (max(workers, 1) * 8)))


def run_local(
    points: Sequence[DesignPoint],
    *,
    jobs: int = 1,
    mapper_name: str | None = None,
    progress: bool = True,
    on_rows: RowsCallback | None = None,
) -> Rows:
    """Evaluate ``points`` with ``jobs`` worker processes; rows come back in point order."""
    bar = tqdm(total=len(points), unit="pt", desc="sweep", disable=not progress, leave=False)
    rows: Rows = []

    def done(chunk: Sequence[DesignPoint], chunk_rows: Rows) -> None:
        if on_rows is not None:
            on_rows(chunk, chunk_rows)
        rows.extend(chunk_rows)
        bar.update(len(chunk))

    try:
        if jobs <= 1 or len(points) <= 1:
            for chunk in _chunks(points, _chunk_size(len(points), 1)):
                done(chunk, evaluate_points(chunk, mapper_name))
        else:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {
                    pool.submit(evaluate_points, chunk, mapper_name): chunk
                    for chunk in _chunks(points, _chunk_size(len(points), jobs))
                }
                for future in as_completed(futures):
                    done(futures[future], future.result())
    finally:
        bar.close()
    return sorted(rows, key=lambda row: row["point"])


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 1, processes: bool = True) -> Iterator:
    """A Dask client: joined to ``scheduler`` if given, else on a LocalCluster started here.

    Raises
    ------
    ArchsimError
        When Dask is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArchsimError(
            "the dask executor needs 'dask[distributed]' (pip install 'dask[distributed]')"
        ) from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ArchsimError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_dask(
    points: Sequence[DesignPoint],
    client: Any,
    *,
    mapper_name: str | None = None,
    progress: bool = True,
    on_rows: RowsCallback | None = None,
) -> Rows:
    """Evaluate ``points`` as chunks on the workers of a Dask ``client``; rows in point order."""
    from distributed import as_completed as dask_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    bar = tqdm(total=len(points), unit="pt", desc="sweep", disable=not progress, leave=False)
    rows: Rows = []
    try:
        futures = {}
        for chunk in _chunks(points, _chunk_size(len(points), workers)):
            # pure=False: identical chunks of a repeated sweep are still separate tasks
            future = client.submit(evaluate_points, list(chunk), mapper_name, pure=False)
            futures[future] = chunk
        for future in dask_completed(list(futures)):
            chunk = futures[future]
            chunk_rows = future.result()
            if on_rows is not None:
                on_rows(chunk, chunk_rows)
            rows.extend(chunk_rows)
            bar.update(len(chunk))
    finally:
        bar.close()
    return sorted(rows, key=lambda row: row["point"])
