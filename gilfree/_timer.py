"""The far end of :func:`gilfree.builds.thread_costs`: times one thread of
each kernel in this interpreter, one request at a time.

``python -m gilfree._timer`` reads JSON lines on stdin and answers each with
one JSON line on stdout:

- ``{"kernels": ["python", ...]}`` or ``{"check": {"target": "mod:fn",
  "args": ["10**6", ...]}}``: what to time (the first line); answer
  ``{"ready": [names]}``;
- ``{"calibrate": i, "seconds": s}``: the ``n`` for which kernel ``i`` takes
  about ``s`` seconds here; answer ``{"n": n}``;
- ``{"time": i, "n": n}``: one call of kernel ``i`` on ``n``; answer
  ``{"seconds": t}``.

A request that fails is answered ``{"error": "..."}``; end of input ends it.
The parent runs one of these per build and alternates between them, so that
the two sides of each ratio run back to back.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _kernels(setup: dict[str, Any]) -> list[Any]:
    from gilfree.kernels import get_kernel

    if "check" in setup:
        from gilfree.checker import as_kernel, resolve
        from gilfree.cli import parse_call_args

        spec = setup["check"]
        args, kwargs = parse_call_args(spec.get("args", []))
        return [as_kernel(resolve(spec["target"]), args, kwargs)]
    return [get_kernel(name) for name in setup["kernels"]]


def _answer(kernels: list[Any], request: dict[str, Any]) -> dict[str, Any]:
    from gilfree.measure import calibrate, time_call

    if "calibrate" in request:
        return {"n": calibrate(kernels[request["calibrate"]], float(request["seconds"]))}
    return {"seconds": time_call(kernels[request["time"]], int(request["n"]))}


def main() -> int:
    out = sys.stdout
    kernels: list[Any] | None = None
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if kernels is None:
                kernels = _kernels(request)
                answer: dict[str, Any] = {"ready": [k.name for k in kernels]}
            else:
                answer = _answer(kernels, request)
        except Exception as exc:  # the parent reports it beside the build's cells
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
