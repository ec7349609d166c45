"""Running ``snnx bench``'s independent jobs side by side on one machine (``snnx bench --jobs N``).

Every job (one backend's training, one ANN's training, one (ANN, percentile) conversion sweep) runs in a
fresh *spawned* process, whatever ``--jobs`` is, for three reasons:

- peak memory per job is the process's ``getrusage(RUSAGE_SELF).ru_maxrss`` minus its resident size when
  the job started; a process reused for a second job would report the first job's peak;
- a job that crashes (or a framework that calls ``os._exit``) becomes an error row, not a dead benchmark;
- ``--jobs 1`` and ``--jobs 4`` run exactly the same code with the same thread settings, so they give the
  same numbers, only the times differ (``tests/test_bench_parallel.py`` checks it).

``--jobs N`` keeps at most N such processes alive at once: N driver threads in the parent each start one
process and wait for its result (:func:`map_jobs`). Each process runs torch with ``threads`` intra-op
threads (default 1) and its BLAS/OpenMP pools at the same size, so N jobs use about N x threads cores
instead of each grabbing all of them. For several machines, use an existing engine (torchrun, Ray):
``docs/bench.md`` shows how; this module does not try to be a scheduler.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Environment variables that size the native thread pools (OpenMP, OpenBLAS, MKL) of a worker.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_env_lock = threading.Lock()


def rss_kb() -> float:
    """Current resident set size in KiB (Linux ``/proc/self/statm``; 0 where it does not exist)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


def peak_rss_kb() -> float:
    """Peak resident set size of this process so far, in KiB (``ru_maxrss``; bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform == "darwin" else float(peak)


def map_jobs(items: Iterable[T], run_one: Callable[[T], R], jobs: int = 1) -> list[R]:
    """``[run_one(item) for item in items]`` with up to ``jobs`` calls at once; results in input order.

    ``run_one`` is expected to start a worker process and wait for it (see :func:`run_isolated`), so
    threads are enough here: they only wait.
    """
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        return [run_one(item) for item in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run_one, items))


def start_spawned(target: Callable[..., Any], args: tuple, threads: int, *, daemon: bool = True) -> Any:
    """Start ``target(*args)`` in a spawned process whose native thread pools have ``threads`` threads.

    ``daemon=False`` for a worker that starts processes of its own (Lava runs every process model in a
    child process, which a daemon may not have); the caller joins or kills it.

    The environment is inherited at start, so the thread variables are set around ``start()`` (under a
    lock: several driver threads start processes at once) and restored afterwards.
    """
    import multiprocessing as mp

    if not daemon:
        # Its own process group, so stop_process_tree can also stop the processes it starts.
        target, args = _in_own_group, (target, args)
    proc = mp.get_context("spawn").Process(target=target, args=args, daemon=daemon)
    with _env_lock:
        saved = {k: os.environ.get(k) for k in THREAD_VARS}
        os.environ.update({k: str(threads) for k in THREAD_VARS})
        try:
            proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return proc


def _in_own_group(target: Callable[..., Any], args: tuple) -> Any:
    os.setsid()
    return target(*args)


def stop_process_tree(proc: Any) -> None:
    """Kill ``proc`` and, for a non-daemon worker (started in its own process group), every process it
    started: Lava's runtime forks one process per process model, which a plain ``kill`` would orphan."""
    import signal

    if proc.is_alive() and not proc.daemon:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # not (yet) a group leader: the process alone
            pass
    if proc.is_alive():
        proc.kill()
    proc.join(timeout=5)


def quiet_worker() -> None:
    """Common set-up of a worker process: no framework deprecation chatter, Lava allowed to import."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Lava calls multiprocessing.set_start_method('fork') when imported, which raises in a spawned
    # process (its start method is already set). Only Lava starts processes in a worker, so let it set its own.
    import multiprocessing.context

    multiprocessing.context._default_context._actual_context = None


def _entry(fn: Callable[..., Any], args: tuple, queue: Any, threads: int) -> None:
    quiet_worker()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        result = fn(*args, progress=queue.put)
    except Exception as exc:  # reported to the parent as this job's error
        from snnx.errors import SnnxError

        # snnx's own errors are already one readable line; anything else is named by its type.
        detail = str(exc) if isinstance(exc, SnnxError) else f"{type(exc).__name__}: {exc}"
        if os.environ.get("SNNX_BENCH_TRACE"):
            detail += "\n" + traceback.format_exc()
        queue.put(("error", detail))
        return
    queue.put(("result", result))


def run_isolated(
    fn: Callable[..., R],
    args: tuple,
    *,
    threads: int = 1,
    on_event: Callable[[Any], None] | None = None,
    timeout: float | None = None,
    daemon: bool = True,
) -> tuple[R | None, str]:
    """Run ``fn(*args, progress=callback)`` in a fresh spawned process and return ``(result, error)``.

    ``fn`` must be importable at module level (it is pickled). Whatever it passes to ``progress`` comes
    back to ``on_event`` in this process. A raised exception, a dead process or a timeout gives
    ``(None, "what happened")``. ``daemon=False`` for a job that starts processes itself (Lava's runtime).
    """
    import multiprocessing as mp
    import queue as queue_mod

    q = mp.get_context("spawn").Queue()
    proc = start_spawned(_entry, (fn, args, q, threads), threads, daemon=daemon)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                event = q.get(timeout=0.5)
            except queue_mod.Empty:
                if not proc.is_alive():
                    proc.join(timeout=5)
                    return None, f"worker process died (exit code {proc.exitcode})"
                if deadline is not None and time.monotonic() > deadline:
                    stop_process_tree(proc)
                    return None, f"timed out after {timeout:.0f} s"
                continue
            if isinstance(event, tuple) and event and event[0] == "result":
                return event[1], ""
            if isinstance(event, tuple) and event and event[0] == "error":
                return None, event[1]
            if on_event is not None:
                on_event(event)
    except BaseException:  # Ctrl-C or a failing callback: the worker (and what it started) must not outlive us
        stop_process_tree(proc)
        raise
    finally:
        proc.join(timeout=30)
