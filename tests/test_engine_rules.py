"""The engine's rules with exact timings: rounds, exclusions, intervals,
stopping, budgets and failures, driven by scripted backends on a fake clock
(tests/fakeengine.py). Nothing here depends on the host's speed."""

from __future__ import annotations

from typing import Any

import pytest
from fakeengine import FakeClock, Step, dies, scripted

from gilfree import Result, sweep
from gilfree.report import verdict_word

#: Serial runs of one second, as many as any test needs. (Tests that add
#: rounds past the minimum set max_rounds: conftest caps the default at 5.)
SECOND = [1.0] * 40


def one_cell(
    monkeypatch: pytest.MonkeyPatch,
    steps: list[Step],
    workers: tuple[int, ...] = (2,),
    **options: Any,
) -> tuple[FakeClock, list[Result]]:
    """``python`` on scripted threads taking ``steps``, against serial runs
    of one second: n=1000, no warm-up, no capacity pair unless ``options``
    say otherwise."""
    clock, backend = scripted(monkeypatch, {"python": SECOND})
    options = {"n": 1000, "warmups": 0, "capacity": False, **options}
    cells = sweep(["python"], [backend("threads", {"python": steps})], list(workers), **options)
    return clock, cells


def test_a_steady_cell_stops_at_the_minimum_rounds_once_precise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, (r,) = one_cell(monkeypatch, [(0.5, 2.0)] * 40)
    assert r.rounds == 5 and r.excluded_rounds == 0
    assert r.speedup == 2.0 and r.speedup_ci() == (2.0, 2.0)
    assert r.stopped == "precision reached" and r.precision_reached
    assert clock.now == pytest.approx(1000 + 5 * 1.5)  # five rounds and nothing else ran


def test_rounds_left_out_do_not_count_toward_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    # One busy CPU: 2x is impossible. Rounds 2 and 5 (0-based 1 and 4) claim
    # it: left out, so it takes seven rounds to keep five.
    steps = [(1.0, 1.0), (0.5, 1.0), (1.0, 1.0), (1.0, 1.0), (0.5, 1.0)] + [(1.0, 1.0)] * 20
    _clock, (r,) = one_cell(monkeypatch, steps, max_rounds=30)
    assert r.round_consistent == [True, False, True, True, False, True, True]
    assert r.rounds == 7 and r.excluded_rounds == 2 and r.speedup == 1.0
    assert r.stopped == "precision reached"


def test_a_cell_with_most_rounds_left_out_is_flagged_and_judged_inconclusive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    every_round_impossible = [(0.5, 1.0)] * 40
    _clock, (r,) = one_cell(monkeypatch, every_round_impossible, max_rounds=8)
    assert r.rounds == 8 and r.excluded_rounds == 8 and r.flagged
    assert r.stopped == "round limit"
    assert verdict_word([r], "python") == "inconclusive"


def test_a_noisy_cell_runs_to_the_round_limit_and_says_what_it_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    noisy = [(0.5, 2.0), (0.8, 2.0)] * 20  # 2x and 1.25x by turns: never within 1%
    _clock, (r,) = one_cell(monkeypatch, noisy, precision=0.01, max_rounds=9)
    assert r.rounds == 9 and r.stopped == "round limit" and r.precision_reached is False
    assert any("asked: +-1%" in w for w in r.warnings)
    low, high = r.speedup_ci()
    assert 1.25 <= low < high <= 2.0 and low <= r.speedup <= high


def test_the_time_budget_stops_after_the_minimum_and_not_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two seconds a round, never precise: a 15 s budget is spent after round 8.
    noisy = [(0.5, 2.0), (1.5, 2.0)] * 20
    clock, (r,) = one_cell(monkeypatch, noisy, precision=0.01, max_time=15, max_rounds=30)
    assert r.rounds == 8 and r.stopped == "time budget"
    assert clock.now - 1000 == 16  # 13.5 s after seven rounds: one more was begun
    # A budget spent before the minimum still gets the minimum.
    clock, (r,) = one_cell(monkeypatch, noisy, precision=0.01, max_time=0.5)
    assert r.rounds == 5 and r.stopped == "time budget"


def test_worker_counts_share_the_budget_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 s for two worker counts, rounds of 1.5 s and 2.5 s by turns: the
    # first gets half (10 s), spent in its sixth round (12 s); the second gets
    # what is left (8 s), spent within the five it must have (9.5 s).
    noisy = [(0.5, 2.0), (1.5, 2.0)] * 20
    _clock, results = one_cell(
        monkeypatch, noisy, workers=(2, 3), precision=0.01, max_time=20, max_rounds=30
    )
    assert [(r.workers, r.rounds, r.stopped) for r in results] == [
        (2, 6, "time budget"),
        (3, 5, "time budget"),
    ]


def test_fixed_rounds_without_a_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = [(0.5, 2.0), (1.5, 2.0)] * 20
    _clock, (r,) = one_cell(monkeypatch, noisy, precision=None, repeats=3)
    assert r.rounds == 3 and r.stopped == "fixed rounds" and r.precision_reached is None


def test_runs_are_paired_in_rounds_and_the_serial_side_alternates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, backend = scripted(monkeypatch, {"python": SECOND})
    cells = [backend("threads", {"python": [0.6] * 9}), backend("processes", {"python": [0.5] * 9})]
    results = sweep(
        ["python"], cells, [2], n=1000, warmups=0, capacity=False, repeats=3, precision=None
    )
    order = [name for name, _, _ in clock.log]
    assert order == [
        "serial", "threads", "processes",  # round 1: the serial run first
        "processes", "threads", "serial",  # round 2: the cells rotate, the serial run last
        "serial", "threads", "processes",
    ]  # fmt: skip
    assert [r.serial_first for r in results] == [(True, False, True)] * 2
    assert [r.speedup for r in results] == [pytest.approx(1 / 0.6), 2.0]


def test_warm_ups_are_run_and_kept_apart_from_the_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    _clock, backend = scripted(monkeypatch, {"python": [9.0, *SECOND]})
    cell = backend("threads", {"python": [9.0, 9.0] + [0.5] * 9})  # two slow warm-ups
    (r,) = sweep(
        ["python"], [cell], [2], n=1000, warmups=2, capacity=False, repeats=3, precision=None
    )
    assert [w.span_s for w in r.warmups] == [9.0, 9.0]
    assert r.speedup == 2.0 and len(r.runs) == 3


def test_a_run_past_the_timeout_fails_its_cell_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock, backend = scripted(monkeypatch, {"python": SECOND})
    hangs = backend("threads", {"python": [0.5, 0.5, 60.0]})  # the third round hangs
    fine = backend("processes", {"python": [0.5] * 9})
    stuck, ok = sweep(
        ["python"],
        [hangs, fine],
        [2],
        n=1000,
        warmups=0,
        capacity=False,
        repeats=4,
        precision=None,
        timeout=5,
    )
    assert stuck.status == "timeout" and "over the 5 s timeout" in stuck.reason
    assert "its workers were stopped" in stuck.reason
    assert ok.status == "ok" and ok.rounds == 4


def test_a_failed_serial_baseline_fails_every_cell_of_its_kernel_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock, backend = scripted(monkeypatch, {"python": [1.0, dies(0)], "cython-gil": SECOND})
    cell = backend("threads", {"python": [0.5] * 9, "cython-gil": [1.0] * 9})
    py, gil = sweep(
        ["python", "cython-gil"],
        [cell],
        [2],
        n=1000,
        warmups=0,
        capacity=False,
        repeats=3,
        precision=None,
    )
    assert py.status == "failed" and py.reason.startswith("its serial baseline: worker 0 died")
    assert gil.status == "ok" and gil.rounds == 3


def test_a_failed_cell_with_errors_raise_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from gilfree.backends import WorkerError

    clock, backend = scripted(monkeypatch, {"python": SECOND})
    cell = backend("threads", {"python": [0.5, dies(1)]})
    with pytest.raises(WorkerError, match="worker 1 died"):
        sweep(["python"], [cell], [2], n=1000, warmups=0, capacity=False, errors="raise")
    # Round 1: the serial run, the cell; round 2 starts with the cell, which
    # dies: nothing runs after it.
    assert [name for name, _, _ in clock.log] == ["serial", "threads"]


def test_ctrl_c_hands_over_the_rounds_measured_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    _clock, backend = scripted(monkeypatch, {"python": SECOND})
    cell = backend("threads", {"python": [0.5, 0.5, KeyboardInterrupt()]})
    seen = []
    with pytest.raises(KeyboardInterrupt):
        sweep(["python"], [cell], [2], n=1000, warmups=0, capacity=False, on_result=seen.append)
    (r,) = seen
    assert r.rounds == 2 and r.stopped == "interrupted" and r.speedup == 2.0
