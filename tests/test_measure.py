"""The measurement layer: plans, results, statistics, metadata."""

from __future__ import annotations

import json
import math
import sys

import pytest

import gilfree
import gilfree.plan
from gilfree.measure import Result, calibrate, chunks_for, context, run, sweep
from gilfree.report import (
    classic_summary,
    table,
    to_json,
    verdict,
    verdict_word,
    verdicts,
    write_json,
)
from gilfree.results import MIN_ROUNDS_FOR_CI
from gilfree.sampler import Handoffs, SamplerReading, wilson


@pytest.mark.parametrize(("n", "workers"), [(0, 1), (1, 3), (10, 3), (7, 7), (10**12 + 1, 4)])
def test_strong_chunks_split_the_work(n: int, workers: int) -> None:
    chunks = chunks_for(n, workers, "strong")
    assert len(chunks) == workers
    assert sum(chunks) == n
    assert max(chunks) - min(chunks) <= 1


def test_weak_chunks_repeat_the_work() -> None:
    assert chunks_for(5, 3, "weak") == [5, 5, 5]


def test_run_returns_complete_result() -> None:
    r = run("cython-nogil", "threads", workers=2, n=20_000_000, repeats=3, precision=None)
    assert r.ok and r.status == "ok"
    assert (r.kernel, r.backend, r.workers, r.n, r.scaling) == (
        "cython-nogil",
        "threads",
        2,
        20_000_000,
        "strong",
    )
    assert len(r.runs) == 3 and len(r.warmups) == 1 and len(r.baseline_s) == 3
    assert r.stopped == "fixed rounds" and r.precision_reached is None
    assert r.serial_first == (True, False, True)  # the order alternates, round by round
    assert len(r.capacity) == 3 and all(c is not None and c.workers == 2 for c in r.capacity)
    assert all(t.iterations == 20_000_000 for t in r.runs)
    low, high = r.speedup_ci()
    if r.too_few_rounds:  # the host left a round out: no interval from two points
        assert math.isnan(low) and math.isnan(high)
    else:
        assert low <= r.speedup <= high
    assert r.efficiency == pytest.approx(r.speedup / 2)
    assert r.busy_cpus > 0
    assert r.context.python == sys.version.split()[0].split("+")[0] or r.context.python


def test_weak_scaling_counts_n_per_worker() -> None:
    r = run("cython-nogil", "threads", workers=3, n=1_000_000, scaling="weak", repeats=1)
    assert all(t.iterations == 3_000_000 for t in r.runs)


def test_results_are_immutable() -> None:
    r = run("python", "serial", workers=1, n=1000, repeats=1, warmups=0)
    with pytest.raises(AttributeError):
        r.n = 5  # type: ignore[misc]


def test_context_records_what_the_issue_asks() -> None:
    c = context()
    assert c.python and c.implementation
    assert isinstance(c.free_threaded_build, bool)
    assert isinstance(c.gil_enabled, bool)
    assert c.switch_interval_s == sys.getswitchinterval()
    assert c.cpu_count and c.cpu_count >= 1
    assert c.gilfree == gilfree.__version__


def test_sweep_grid_and_unsupported_cells() -> None:
    results = sweep(
        ["python", "numpy"], ["serial", "threads", "interpreters"], [1, 2], n=100_000, repeats=1
    )
    assert len(results) == 2 * 3 * 2
    for r in results:
        if r.backend == "interpreters" and (sys.version_info < (3, 12) or r.kernel == "numpy"):
            assert r.status == "unsupported" and r.reason and not r.runs
            assert math.isnan(r.speedup)
        else:
            assert r.ok, r.reason
            assert r.runs[0].iterations == 100_000


def test_sweep_calls_progress_before_every_round() -> None:
    calls: list[tuple[str, int]] = []

    def hook(label: str, steps: int) -> None:
        calls.append((label, steps))

    results = sweep(
        ["python"], ["threads", "serial"], [1, 2], n=1000, repeats=2, precision=None, progress=hook
    )
    # Fixed rounds: two per worker count, each announced once.
    assert [label.split(":")[0] for label, _ in calls] == ["python x1"] * 2 + ["python x2"] * 2
    # The most rounds there can be (the limit this suite sets, see conftest).
    assert {steps for _, steps in calls} == {2 * gilfree.plan.DEFAULT_MAX_ROUNDS}
    assert all(r.rounds == 2 and r.stopped == "fixed rounds" for r in results)


def test_default_n_is_calibrated_per_kernel() -> None:
    (py, nogil) = sweep(
        ["python", "cython-nogil"], ["threads"], [2], seconds=0.02, repeats=1, precision=None
    )
    assert nogil.n > 20 * py.n  # the compiled loop is far faster per iteration


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"workers": 0}, ValueError, "workers must be >= 1"),
        ({"workers": 2.0}, TypeError, "workers must be an integer"),
        ({"n": -1}, ValueError, "n must be >= 0"),
        ({"n": 1e6}, TypeError, "n must be an integer"),
        ({"kernel": "nope"}, KeyError, "valid names are"),
        ({"backend": "nope"}, KeyError, "valid names are"),
        ({"repeats": 0}, ValueError, "repeats must be >= 1"),
        ({"scaling": "medium"}, ValueError, "strong, weak"),
        ({"start_method": "fork", "backend": "threads"}, ValueError, "only 'processes'"),
        ({"start_method": "teleport", "backend": "processes"}, ValueError, "unknown start"),
    ],
)
def test_bad_plans_are_rejected(kwargs: dict[str, object], error: type, match: str) -> None:
    args: dict[str, object] = {"n": 1000, "repeats": 1, **kwargs}
    with pytest.raises(error, match=match):
        run(**args)  # type: ignore[arg-type]


def test_weak_scaling_total_beyond_max_n_is_refused_up_front() -> None:
    with pytest.raises(OverflowError, match="weak scaling"):
        run("cython-nogil", "threads", workers=2, n=2**62, scaling="weak", repeats=1)


def test_calibrate_rejects_bad_seconds() -> None:
    with pytest.raises(ValueError, match="seconds"):
        calibrate("python", 0)


def test_calibrate_starts_from_one_call_of_a_slow_function() -> None:
    # check --python times a user's function in each build: where n counts
    # calls of a 10 ms function, starting at a thousand calls took a minute.
    import time as _time

    from gilfree.checker import as_kernel

    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        _time.sleep(0.01)

    n = calibrate(as_kernel(slow), 0.05)
    assert 1 <= n <= 10
    assert len(calls) < 20, f"{len(calls)} calls to calibrate 50 ms of 10 ms calls"


def test_reports_and_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    results: list[Result] = sweep(
        ["python", "cython-nogil"],
        ["threads", "processes", "interpreters"],
        [2],
        n=200_000,
        repeats=2,
    )
    assert table(results).row_count == len(results)
    lines = verdicts(results)
    assert [line.split(":")[0] for line in lines] == ["python", "cython-nogil"]
    assert classic_summary(results)[0].startswith("python, one thread")
    path = tmp_path / "out.json"
    write_json(to_json(results, command=["test"]), str(path))
    data = json.loads(path.read_text())
    assert len(data["results"]) == len(results)
    first = data["results"][0]
    assert first["runs"][0]["workers"][0]["iterations"] > 0  # raw per-worker stamps, named
    assert "speedup_ci95" in first["derived"]
    assert data["context"]["switch_interval_s"] == sys.getswitchinterval()  # stored once


def fake(
    kernel: str,
    backend: str,
    speedup: float | list[float],
    workers: int = 2,
    contention: float | None = None,
    gil_enabled: bool = True,
    cpus: int = 2,
    busy: float | None = None,
    capacity: float | list[float] | None = None,
    held: float | None = None,
    samples: int = 10_000,
    handoffs_per_s: float | None = None,
) -> Result:
    """A result with chosen timings (and GIL reading), to test the verdict rules exactly.

    ``speedup`` may be one value (kept in each of three rounds) or one per
    round. With ``busy``, every round carries CPU readings (the serial run
    keeps one CPU busy, the parallel run ``busy``), so the consistency check
    applies; ``capacity`` adds the host's capacity pairs (one value for every
    round, or one per round). ``held``: the GIL sampler read one worker alone
    holding the GIL that share of its time (from ``samples`` samples), and
    the parallel run hand the GIL over ``handoffs_per_s`` times a second."""
    from dataclasses import replace

    from gilfree._worker import WorkerStamp
    from gilfree.backends import RunTiming
    from gilfree.measure import CapacityRound
    from gilfree.meter import GILReading

    # One value: that speedup in each of the fewest rounds an interval needs.
    speeds = speedup if isinstance(speedup, list) else [speedup] * MIN_ROUNDS_FOR_CI
    runs = []
    for s in speeds:
        span = 1.0 / s
        stamps = () if busy is None else (WorkerStamp(0, round(span * 1e9), busy * span, 1),)
        runs.append(RunTiming(0.0, span, span, stamps))
    caps: list[CapacityRound | None] = []
    if capacity is not None:
        values = capacity if isinstance(capacity, list) else [capacity] * len(speeds)
        caps = [CapacityRound(workers, 1.0, 1.0, 1.0 / c, min(workers, c) / c) for c in values]
    gil = None
    if contention is not None or not gil_enabled:
        gil = GILReading(gil_enabled, 100, contention or 0.0, 1.0, 0.005, 0.001)
    return Result(
        kernel=kernel,
        backend=backend,
        workers=workers,
        n=1,
        scaling="strong",
        start_method=None,
        status="ok",
        reason="",
        runs=tuple(runs),
        warmups=(),
        baseline_s=(1.0,) * len(runs),
        baseline_cpu_s=(1.0,) * len(runs) if busy is not None else (),
        capacity=tuple(caps),
        context=replace(
            context(), gil_enabled=gil_enabled, cpu_count=cpus, cpu_affinity=tuple(range(cpus))
        ),
        gil=gil,
        gil_alone=None if held is None else _reading(held, samples),
        gil_handoffs=None if handoffs_per_s is None else Handoffs(round(handoffs_per_s), 1.0),
    )


def _reading(held: float, samples: int) -> SamplerReading:
    hits = round(held * samples)
    return SamplerReading(
        held=hits / samples,
        held_ci=wilson(hits, samples),
        samples=samples,
        seconds=1.0,
        handoffs=0,
        handoffs_per_s=0.0,
    )


def test_verdict_rules() -> None:
    """The whole rule set, one case each: with the GIL's state read, its held
    share decides (GIL-bound, holds the GIL X%, threads help or limited
    elsewhere with it free); unread, only a meter that saw turns decides;
    without a GIL, the speedup is the line."""
    bound = [fake("python", "threads", 1.02, busy=1.0, held=1.0), fake("python", "processes", 1.95)]
    assert verdicts(bound) == [
        "python: GIL-bound: it holds the GIL 100% [100%, 100%] of its time alone; threads 1.02x "
        "[1.02, 1.02] at 2 workers; processes give 1.95x; or release the GIL in the hot loop"
    ]
    half = fake("numpy", "threads", 1.4, busy=1.4, held=0.5)
    assert verdicts([half]) == [
        "numpy: holds the GIL 50% [49%, 51%] of its time alone, so threads can reach at most "
        "2.00x (the GIL's bound); threads 1.40x [1.40, 1.40] at 2 workers"
    ]
    helps = fake("cython-nogil", "threads", 1.98, busy=1.98, held=0.0)
    assert verdict_word([helps], "cython-nogil") == "threads help"
    locked = fake("numpy", "threads", 1.05, busy=1.05, held=0.0, capacity=1.97)
    assert verdict_word([locked], "numpy") == "limited elsewhere"
    # Not read (an executor of processes, say, or a build whose GIL is not
    # read): the meter's turns decide GIL-bound; nothing else decides.
    turns = fake("python", "threads", 1.02, busy=1.0, contention=0.93)
    assert verdicts([turns]) == [
        "python: GIL-bound: threads 1.02x [1.02, 1.02] at 2 workers took turns (GIL contention "
        "93%, 1.00 busy CPUs); or release the GIL in the hot loop"
    ]
    assert verdicts([fake("python", "threads", 1.9)]) == [
        "python: inconclusive: the GIL's state was not read on this build; threads 1.90x "
        "[1.90, 1.90] at 2 workers"
    ]
    # The meter cannot see short held sections: a low wait decides nothing.
    free = fake("numpy", "threads", 1.13, busy=1.13, contention=0.01)
    assert verdict_word([free], "numpy") == "inconclusive"
    # A free-threaded build with the GIL off: say so, never a contention number.
    assert verdicts([fake("python", "threads", 1.9, gil_enabled=False)]) == [
        "python: no GIL: threads 1.90x [1.90, 1.90] at 2 workers"
    ]
    assert verdicts([fake("python", "processes", 1.9)]) == ["python: processes give 1.90x"]


def test_a_cell_with_every_round_left_out_shows_a_dash_not_nan() -> None:
    # Rich reads "[nan, nan]" as a style tag and drops it; such a cell has
    # no speedup to show at all.
    from rich.console import Console

    r = fake("python", "threads", [3.0, 3.0, 3.0], busy=1.0)  # faster than 1 CPU allows
    assert math.isnan(r.speedup)
    for wide in (False, True):
        console = Console(width=200, record=True)
        console.print(table([r], "t", wide=wide))
        text = console.export_text()
        assert "nan" not in text and " - " in text


# ------------------------------------------- verdicts from readings inside runs


def test_the_held_share_decides_the_word_whatever_the_speedup() -> None:
    # The host's speed cannot move the word: a GIL-bound function reads
    # GIL-bound at 0.76x and at 1.55x (back-to-back pairs wander that much).
    for speedup in (0.76, 1.0, 1.55):
        bound = fake("python", "threads", speedup, busy=1.0, held=0.99)
        line = verdict([bound], "python")
        assert line.startswith("GIL-bound: it holds the GIL 99% ["), line
    # A function that holds the GIL about half its time in short sections
    # (the chunked hashing loop) reads its share, never "GIL free".
    half = fake("realwork:chunked", "threads", 1.03, busy=1.11, held=0.49, handoffs_per_s=5100)
    line = verdict([half], "realwork:chunked")
    assert line.startswith("holds the GIL 49% ["), line
    assert "at most 2.04x (the GIL's bound)" in line and "5,100 GIL hand-offs/s" in line
    assert verdict_word([half], "realwork:chunked") == "holds the GIL"


def test_one_worker_is_named_in_the_singular() -> None:
    alone = fake("k", "threads", 1.0, workers=1, busy=1.0, held=0.5)
    line = verdict([alone], "k")
    assert "at 1 worker;" in line and "1 workers" not in line
    assert "at 2 workers" in verdict([fake("k", "threads", 1.5, busy=1.5, held=0.5)], "k")


def test_a_free_gil_helps_or_names_what_else_limits_the_threads() -> None:
    helps = fake("cython-nogil", "threads", 1.9, busy=1.9, held=0.0, capacity=1.95)
    assert verdict([helps], "cython-nogil").startswith("threads help: it holds the GIL 0% [")
    # Sleeping work keeps no CPU busy, yet runs in parallel: the speedup says so.
    sleeps = fake("userfuncs:nap", "threads", 2.0, held=0.0, capacity=1.95)
    assert verdict_word([sleeps], "userfuncs:nap") == "threads help"
    # The GIL is free, the host could run two processes, yet the threads kept
    # one CPU busy: something else serialises them.
    locked = fake("userfuncs:locked", "threads", 1.0, busy=1.0, held=0.02, capacity=1.95)
    line = verdict([locked], "userfuncs:locked")
    assert line.startswith("limited elsewhere: it holds the GIL 2% ["), line
    assert "kept 1.00 CPUs busy" in line
    # The same, on a host that could not run two processes in parallel either:
    # nothing can be said of the threads.
    busy_host = fake("cython-nogil", "threads", 1.0, busy=1.0, held=0.0, capacity=1.02)
    assert verdict_word([busy_host], "cython-nogil") == "inconclusive"


def test_too_few_samples_decide_no_word_and_say_what_would() -> None:
    few = fake("python", "threads", 1.9, busy=1.9, held=0.0, samples=20)
    line = verdict([few], "python")
    assert line.startswith("inconclusive: one worker alone ran 1000.0 ms, 20 samples"), line
    assert "raise -n or --seconds" in line
    # A meter that saw the threads take turns still decides GIL-bound.
    turns = fake("python", "threads", 1.02, busy=1.0, contention=0.93, held=1.0, samples=20)
    assert verdict_word([turns], "python") == "GIL-bound"


def test_rounds_the_host_inflated_are_named_but_do_not_move_the_word() -> None:
    r = fake("python", "threads", [1.0, 1.0, 1.0, 1.6, 1.7, 1.8, 1.9], busy=1.0, held=0.99)
    assert r.flagged
    line = verdict([r], "python")
    assert line.startswith("GIL-bound:") and "rounds were left out" in line


def test_a_saved_cell_keeps_its_readings() -> None:
    r = fake("python", "threads", 1.0, busy=1.0, held=0.97, handoffs_per_s=200.0)
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.gil_held == r.gil_held and back.gil_held_ci == r.gil_held_ci
    assert back.handoffs_per_s == 200.0 and back.busy_cpus == r.busy_cpus
    derived = r.to_dict()["derived"]
    assert derived["gil_held"] == r.gil_held and derived["handoffs_per_s"] == 200.0


def test_threads_that_kept_pace_with_the_processes_of_their_rounds_are_not_limited_elsewhere() -> (
    None
):
    # Few busy CPUs, but as much as the processes measured in the same rounds
    # got: the host's other work took the CPUs (it came and went between the
    # runs), not something in the function. No "limited elsewhere".
    kept_pace = fake("k", "threads", 1.1, busy=1.1, capacity=1.2, held=0.0)
    assert verdict_word([kept_pace], "k") == "inconclusive"
    fell_short = fake("k", "threads", 1.0, busy=1.0, capacity=1.9, held=0.0)
    assert verdict_word([fell_short], "k") == "limited elsewhere"
