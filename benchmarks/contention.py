"""Load detection on a shared CPU: how many cores other processes used while a row was timed, and the threshold
above which a row is re-timed and then flagged ``contended``."""
from __future__ import annotations

import os
import time
from typing import Optional


class CpuLoad:
    """CPU time used by everything but this process (other tenants, CI, the hypervisor's steal) over an
    interval, in cores: from /proc/stat (busy + steal jiffies) minus /proc/self/stat (our threads). None where
    /proc is unavailable."""

    def __init__(self):
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = sum(v[:8]) - v[3] - v[4]           # user nice system (idle iowait) irq softirq steal
            with open("/proc/self/stat") as f:
                fs = f.read().rsplit(")", 1)[1].split()
            return busy, int(fs[11]) + int(fs[12]), time.perf_counter()
        except Exception:
            return None

    def start(self):
        self._t0 = self._read()

    def foreign_cores(self) -> Optional[float]:
        t1 = self._read()
        if t1 is None or self._t0 is None or t1[2] - self._t0[2] < 0.05:
            return None
        other = (t1[0] - self._t0[0]) - (t1[1] - self._t0[1])
        return max(0.0, other / self._hz / (t1[2] - self._t0[2]))


RETRIES_DEFAULT = 2
CONTENDED = 0.25     # foreign cores above which a CPU row is re-timed (up to RETRIES times) and flagged
