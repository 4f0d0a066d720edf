"""Run design points on a local process pool, with a progress bar."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

from archsim.dse.evaluate import evaluate_points
from archsim.dse.space import DesignPoint


def _chunks(points: Sequence[DesignPoint], size: int) -> list[Sequence[DesignPoint]]:
    return [points[i : i + size] for i in range(0, len(points), size)]


def run_local(
    points: Sequence[DesignPoint],
    *,
    jobs: int = 1,
    mapper_name: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate ``points`` with ``jobs`` worker processes; rows come back in point order.

    Points travel in chunks (several per worker) so each worker lowers a workload once per chunk
    and the progress bar still moves.
    """
    bar = tqdm(total=len(points), unit="pt", desc="sweep", disable=not progress, leave=False)
    rows: list[dict[str, Any]] = []
    try:
        if jobs <= 1 or len(points) <= 1:
            for chunk in _chunks(points, 8):
                rows += evaluate_points(chunk, mapper_name)
                bar.update(len(chunk))
        else:
            chunk_size = max(1, len(points) // (jobs * 8))
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {
                    pool.submit(evaluate_points, chunk, mapper_name): len(chunk)
                    for chunk in _chunks(points, chunk_size)
                }
                for future in as_completed(futures):
                    rows += future.result()
                    bar.update(futures[future])
    finally:
        bar.close()
    return sorted(rows, key=lambda row: row["point"])
