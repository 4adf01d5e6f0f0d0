"""Wall-clock timing shared by the library-baseline scripts (`baselines-mobilenet-v1.py`,
`ort-mobilenet-v1.py`)."""
import statistics
import time


def timed(f, runs, warm=10):
    """Calls `f` `warm` times untimed, then `runs` times timed; returns (median, min, max) in ms."""
    for _ in range(warm):
        f()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), min(t), max(t)
