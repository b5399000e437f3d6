"""Paired rounds, consistency checks, capacity, and verdicts that follow intervals."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import pytest
from noise import noise
from test_measure import fake

from gilfree.measure import consistent, median_ci, run, sweep
from gilfree.plan import Plan
from gilfree.report import verdict, verdict_word

# ------------------------------------------------------------ the consistency check


@pytest.mark.parametrize(
    ("ratio", "serial", "parallel", "ok"),
    [
        (1.0, (1.0, 1.0), (1.0, 1.0), True),  # GIL-bound threads: 1x with one busy CPU
        (1.9, (1.0, 1.0), (1.0 / 1.9, 2.0 / 1.9), True),  # two CPUs busy, 1.9x: possible
        (1.9, (1.0, 1.0), (1.0 / 1.9, 1.0 / 1.9), False),  # 1.9x on one busy CPU: drift
        (1.1, (1.0, 1.0), (1.0 / 1.1, 1.0 / 1.1), True),  # within the slack for unequal CPUs
        (2.0, (1.0, 0.01), (0.5, 0.001), True),  # sleeping work keeps no CPU busy: unchecked
    ],
)
def test_a_round_faster_than_its_busy_cpus_allow_is_inconsistent(
    ratio: float, serial: tuple[float, float], parallel: tuple[float, float], ok: bool
) -> None:
    assert consistent(ratio, *serial, *parallel) is ok


def test_inconsistent_rounds_are_kept_raw_but_left_out_of_the_speedup() -> None:
    # Five rounds on one busy CPU: three honest (about 1x), two the host inflated.
    r = fake("python", "threads", [1.0, 0.98, 1.6, 1.02, 1.7, 1.8], busy=1.0, contention=0.9)
    assert r.round_consistent == [True, True, False, True, False, False]
    assert r.excluded_rounds == 3
    assert r.speedup == pytest.approx(1.0)  # the median of the three kept rounds
    assert not r.flagged  # half the rounds out: not more than half
    worse = fake("python", "threads", [1.0, 0.98, 1.6, 1.7, 1.8], busy=1.0, contention=0.9)
    assert worse.flagged and verdict_word([worse], "python") == "inconclusive"
    data = r.to_dict()
    assert len(data["runs"]) == 6 and len(data["baseline_s"]) == 6  # every round is saved
    assert data["derived"]["round_consistent"] == r.round_consistent
    assert data["derived"]["round_speedups"][2] == pytest.approx(1.6)
    assert "left out" in worse.warnings[0]


def test_median_ci_is_reproducible_and_holds_the_median() -> None:
    values = [1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.3]
    low, high = median_ci(values)
    assert (low, high) == median_ci(values)
    assert low <= sorted(values)[3] <= high
    assert median_ci([]) != median_ci([])  # NaN: no data, no interval
    assert median_ci([2.0]) == (2.0, 2.0)


# --------------------------------------------------------------------- verdicts


def test_a_wide_interval_moves_the_magnitude_not_the_word() -> None:
    # Rounds from 0.95x to 1.4x: the interval is wide, the held share is not.
    cell = fake("python", "threads", [0.95, 1.1, 1.3, 1.05, 1.4, 1.2, 1.0], busy=1.5, held=0.98)
    low, high = cell.speedup_ci()
    assert high - low > 0.15
    assert verdict_word([cell], "python") == "GIL-bound"


def test_threads_never_help_while_the_meter_says_they_ran_one_at_a_time() -> None:
    # A host that sped up during every parallel run, just under the slack:
    # 1.12x per round passes the check, but a contended GIL and one busy CPU
    # cannot give 1.12x; and a share of capacity near 1 must not read "help".
    cell = fake("python", "threads", [1.9] * 6, busy=1.0, contention=0.9, capacity=1.95)
    assert verdict_word([cell], "python") == "inconclusive"  # flagged: every round out
    # Readings that pass the check one by one, yet disagree together:
    sneaky = fake("cython-gil", "threads", [1.12] * 6, busy=1.0, contention=0.95, capacity=1.15)
    assert verdict_word([sneaky], "cython-gil") != "threads help"


def test_threads_never_read_gil_bound_with_the_gil_free() -> None:
    cell = fake("cython-nogil", "threads", [1.0, 1.02, 0.98, 1.01, 1.0], busy=1.0, held=0.0,
                capacity=1.9)  # fmt: skip
    assert verdict_word([cell], "cython-nogil") == "limited elsewhere"


def test_the_verdict_shows_the_share_of_what_processes_got_here() -> None:
    # A slow second CPU: processes get 1.63x, threads 1.58x: that is threads
    # helping fully, and the line puts them side by side.
    cell = fake("cython-nogil", "threads", [1.58] * 5, busy=1.9, held=0.0, capacity=1.63)
    line = verdict([cell], "cython-nogil")
    assert line.startswith("threads help: it holds the GIL 0% [")
    assert "1.58x [1.58, 1.58] at 2 workers = 97% of what 2 processes got here (1.63x)" in line


def test_a_host_that_gives_processes_no_parallelism_decides_nothing_alone() -> None:
    # The GIL free, the threads' CPUs one busy, and a host on which processes
    # got no parallelism either: nothing says what limits the threads.
    cell = fake("numpy", "threads", [1.0] * 5, busy=1.0, held=0.0, capacity=1.05)
    line = verdict([cell], "numpy")
    assert line.startswith("inconclusive:") and "could not show parallelism" in line
    # A held share near 1 is direct evidence, whatever the host did.
    bound = fake("python", "threads", [1.0] * 5, busy=1.0, held=0.99, capacity=1.05)
    assert verdict_word([bound], "python") == "GIL-bound"


# ----------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_time": 0}, ValueError, "max_time must be more than 0"),
        ({"max_time": math.nan}, ValueError, "max_time"),
        ({"max_time": math.inf}, ValueError, "max_time"),
        ({"precision": -0.05}, ValueError, "precision must be between 0 and 1"),
        ({"precision": math.nan}, ValueError, "precision"),
        ({"precision": 5}, ValueError, "0.05 is 5%"),
        ({"precision": "5%"}, TypeError, "precision must be a number"),
        ({"seconds": "0.1"}, TypeError, "seconds must be a number of seconds, not str"),
        ({"seconds": math.inf}, ValueError, "seconds"),
        ({"timeout": 1e12}, ValueError, "timeout must be more than 0 and at most 86400"),
        ({"scheduler": 5}, TypeError, "scheduler must be an address"),
        ({"rounds": 9, "max_rounds": 3}, ValueError, "max_rounds"),
        ({"capacity": "yes"}, TypeError, "capacity must be True or False"),
    ],
)
def test_bad_plans_are_refused_before_any_work(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        Plan.build(["python"], ["threads", "dask"], [2], 1000, **kwargs)


def test_a_lone_name_is_one_kernel_and_duplicates_are_measured_once() -> None:
    plan = Plan.build("python", ["threads", "threads"], [2, 2], 1000)
    assert [k.name for k in plan.kernels] == ["python"]
    assert [b.name for b in plan.backends] == ["threads"] and plan.workers == (2,)


# ------------------------------------------------------------ adaptive rounds


# The rules that add and stop rounds (precision, round limit, time budget)
# are checked with exact timings in tests/test_engine_rules.py.


def test_capacity_is_measured_in_the_same_rounds() -> None:
    (cell,) = sweep(["python"], ["threads"], [2], n=2_000_000, repeats=3, precision=None)
    assert cell.rounds == 3 and len(cell.capacity) == 3
    assert all(c is not None and c.serial_s > 0 and c.parallel_s > 0 for c in cell.capacity)
    # The capacity's work lasts as long as the cell's serial run (within a factor
    # of a few: calibration and the host's speed both move).
    assert all(
        0.2 < c.serial_s / b < 5
        for c, b in zip(cell.capacity, cell.baseline_s, strict=True)
        if c is not None
    )
    speedups, capacities = cell._paired()
    if speedups:  # the share is the mean speedup over the mean capacity, paired
        assert cell.share == pytest.approx(
            statistics.fmean(speedups) / statistics.fmean(capacities)
        )
    (alone,) = sweep(["python"], ["threads"], [1], n=100_000, repeats=3, precision=None)
    assert alone.capacity == (None, None, None)  # one worker: nothing to compare with


# A host that changes speed between the two runs of every round: every
# round left out, the cell flagged, inconclusive (exactly, on a fake clock):
# tests/test_engine_rules.py.


def test_a_busy_host_is_recorded_and_warned_about() -> None:
    with noise(on_s=60, off_s=0):  # one CPU taken for the whole cell
        time.sleep(0.3)
        (cell,) = sweep(
            ["python"], ["threads"], [2], n=300_000, repeats=5, precision=None, capacity=False
        )
    assert cell.host is not None and cell.host.others_cpus is not None
    assert cell.host.others_cpus > 0.5
    assert cell.host.load_before is not None and cell.host.load_after is not None
    assert any("the host was busy" in w for w in cell.warnings)


# ------------------------------------------------------------ the article


def test_the_article_programs_run_as_written() -> None:
    from gilfree import article

    report = article.replicate(rounds=1, count=400_000)
    text = "\n".join(report.lines())
    assert "6.61s" in text and "6.04s" in text and "4.29s" in text  # the article's own
    assert "2 x countdown(100,000), as written" in text  # COUNT//2 per process of COUNT
    assert "sets COUNT = 200000" in text and "half the work" in text
    assert "Fair figure: two processes counting the full 400,000" in text
    assert report.fair[0].startup_s > 0 and report.fair[0].work_s > 0


# ------------------------------------------------------------ the noise maker

VERDICT_KERNELS = ["python", "cython-gil", "cython-nogil"]
RIGHT = {"python": "GIL-bound", "cython-gil": "GIL-bound", "cython-nogil": "threads help"}


@pytest.mark.needs_gil
@pytest.mark.slow
def test_noise_never_flips_a_verdict() -> None:
    """With another process taking a CPU for a second and giving it back for
    a second, over and over, every cell reads right or inconclusive."""
    words = []
    with noise(on_s=1.0, off_s=1.0):
        for _ in range(2):
            results = sweep(VERDICT_KERNELS, ["threads"], [2])
            words += [(k, verdict_word(results, k)) for k in VERDICT_KERNELS]
    wrong = [(k, w) for k, w in words if w not in (RIGHT[k], "inconclusive")]
    assert not wrong, words


@pytest.mark.needs_gil
@pytest.mark.slow
def test_without_noise_the_same_cells_give_the_same_verdict_every_time() -> None:
    """Back to back, at the defaults, each cell gives the same verdict, the
    right one, every time (one undecided cell allowed where the host changed
    speed inside its rounds, and says so), with no second try: the word follows the share of
    its time one worker holds the GIL (read from the GIL's state), which the
    host's speed cannot move, and the busy CPUs of the GIL-free kernel's
    threads."""
    runs = []
    for _ in range(3):
        results = sweep(VERDICT_KERNELS, ["threads"], [2])
        runs.append({k: verdict(results, k) for k in VERDICT_KERNELS})
    words = [(k, run[k].split(":", 1)[0]) for run in runs for k in VERDICT_KERNELS]
    # Never a wrong word. A shared host that changes speed inside one cell's
    # rounds may leave that one cell undecided, once, if it says so; every
    # other cell gives the right word.
    assert all(w in (RIGHT[k], "inconclusive") for k, w in words), runs
    undecided = [run[k] for run in runs for k in VERDICT_KERNELS if run[k].startswith("inc")]
    assert len(undecided) <= 1, runs
    assert all(any(w in text for w in ("host", "samples", "kept")) for text in undecided), runs


def test_a_run_too_short_to_measure_says_so_instead_of_judging() -> None:
    # n=0: the "speedup" would be thread start-up over nothing.
    cell = run("python", "threads", n=0, repeats=3, precision=None, capacity=False)
    assert cell.too_short
    assert any("too short to measure parallelism" in w for w in cell.warnings)
    assert verdict([cell], "python").startswith("inconclusive: the serial run takes")
    long_enough = fake("python", "threads", [1.0] * 5, contention=0.9)  # 1 s serial runs
    assert not long_enough.too_short
