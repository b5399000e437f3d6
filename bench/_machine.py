"""One line describing where a figure was measured (for tables and plots)."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    gil = "GIL enabled"
    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        gil = "GIL disabled"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()}, {cpus} CPUs available; {platform.python_implementation()} "
        f"{platform.python_version()} ({gil}); {platform.system()} {platform.release()}"
    )
