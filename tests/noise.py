"""A noise maker: another process that takes a CPU and gives it back, over and over.

It is what a shared host does to a measurement (another tenant's job starting
and stopping), made on purpose so that tests can show that verdicts survive it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

_LOOP = """
import sys, time
on, off = float(sys.argv[1]), float(sys.argv[2])
while True:
    end = time.monotonic() + on
    while time.monotonic() < end:
        pass
    time.sleep(off)
"""


@contextlib.contextmanager
def noise(on_s: float = 1.0, off_s: float = 1.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process that keeps one CPU busy for ``on_s`` seconds, then idles
    for ``off_s``, until the block ends (it is killed then, whatever happens)."""
    proc = subprocess.Popen([sys.executable, "-c", _LOOP, str(on_s), str(off_s)])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
