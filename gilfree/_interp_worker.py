"""What each subinterpreter of the ``interpreters`` backend runs.

The backend starts every subinterpreter with one line,
``from gilfree._interp_worker import main; main(...)``, its arguments plain
literals. Kept outside :mod:`gilfree.backends` on purpose: importing that
package would load every backend (multiprocessing included) into each
subinterpreter; this module needs only the kernels and the worker stamps.

The conversation, over OS pipes (shared by every interpreter of a process):

1. load the kernel, then write ``ready`` (or, if it cannot be loaded here, an
   ``unsupported`` message and stop);
2. read one byte from the go pipe: ``g`` runs the kernel, anything else
   abandons the run;
3. write one JSON line: ``{"ok": stamp}``, ``{"error": text}``,
   ``{"unsupported": text}`` or ``{"abandoned": true}``, with the GIL
   reading under ``"gil"`` when metered.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))


def _load(kernel: str | None, pickle_path: str | None) -> Any:
    """The kernel to run: a registered name, or one pickled to a file (the
    bootstrap line has made this interpreter's ``sys.path`` the main one's,
    so that the module of a user's function can be imported)."""
    if pickle_path is None:
        return kernel
    import pathlib
    import pickle

    return pickle.loads(pathlib.Path(pickle_path).read_bytes())


def _stoppable(timed: Any, ref: Any, n: int, since: int, stop: int) -> tuple[Any, Any]:
    """Run an interpreted loop that an exception stops when the main
    interpreter says so (a byte on ``stop``); returns the thread that waits
    for that word (it ends with the run: join it) and the worker's stamps,
    or the exception it raised. The loop
    runs in a thread of this interpreter's own: on CPython 3.12 the thread
    that entered the interpreter cannot be targeted."""
    import threading

    from gilfree._watch import Running

    running = Running()
    results: list[Any] = []

    def work() -> None:
        try:
            with running.kernel():
                results.append(timed(ref, n, since))
        except BaseException as exc:
            results.append(exc)

    def wait_for_stop() -> None:
        if os.read(stop, 1) == b"s":
            running.stop()

    stopper = threading.Thread(target=wait_for_stop)
    stopper.start()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return stopper, results[0]


def main(
    *,
    kernel: str | None,
    pickle_path: str | None,
    n: int,
    since: int,
    out: int,
    go: int,
    stop: int,
    stoppable: bool,
    meter: bool,
) -> None:
    """Run one worker's part of a run in this subinterpreter (see the module)."""
    msg: dict[str, Any] = {}
    stopper = None
    try:
        from gilfree._worker import ready, timed

        ref = _load(kernel, pickle_path)
        ready(ref)
    except BaseException as exc:  # this interpreter cannot load the kernel
        msg = {"unsupported": _describe(exc)}
    else:
        os.write(out, b"ready\n")
        gil_meter = None
        try:
            if os.read(go, 1) == b"g":
                if meter:
                    from gilfree.meter import GILMeter

                    gil_meter = GILMeter().start()
                if stoppable:
                    stopper, counted = _stoppable(timed, ref, n, since, stop)
                    if isinstance(counted, BaseException):
                        raise counted
                    msg = {"ok": list(counted)}
                else:
                    msg = {"ok": list(timed(ref, n, since))}
            else:
                msg = {"abandoned": True}
        except BaseException as exc:
            # An ImportError here means a module cannot be loaded in a
            # subinterpreter (NumPy refuses own-GIL ones): the kernel cannot
            # run here, it did not fail.
            kind = "unsupported" if isinstance(exc, ImportError) else "error"
            msg = {kind: _describe(exc)}
            try:  # stop the other workers: the cancel generation is process-wide
                from gilfree._countdown import cancel_running

                cancel_running()
            except BaseException:
                pass
        finally:
            if gil_meter is not None:  # its probe thread must end before the interpreter
                msg["gil"] = gil_meter.stop().__dict__
    os.write(out, (json.dumps(msg) + "\n").encode())
    if stopper is not None:  # it ends when the run does (the main interpreter says)
        stopper.join()
