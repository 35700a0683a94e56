"""How much CPU other processes took while a workload was timed.

The benchmark machine has two cores and is shared (tests, builds, other benchmarks), so a
number taken while something else was busy is not comparable. The harness measures the
machine's busy CPU time and subtracts what its own process groups (servers, client) used;
the rest is "foreign" load, recorded with every run and summarised in the notes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)


def machine_busy_seconds() -> float:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields)) / TICKS


def groups_cpu_seconds(groups: set[int]) -> float:
    """CPU time of every live process whose process group is in ``groups``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        fields = stat.rsplit(")", 1)[1].split()
        # After the command name: state ppid pgrp ... utime is field 14 overall, index 11 here.
        if int(fields[2]) in groups:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Snapshot:
    wall: float
    busy: float
    ours: float


class NoiseMeter:
    """``start()`` before a timed section, ``foreign_cores(snapshot)`` after it."""

    def __init__(self) -> None:
        self.groups: set[int] = set()

    def watch(self, pid: int) -> None:
        # Every child the harness starts leads its own session, so its pid is its group id.
        self.groups.add(pid)

    def start(self) -> Snapshot:
        return Snapshot(time.monotonic(), machine_busy_seconds(), self._ours())

    def foreign_cores(self, since: Snapshot) -> float:
        wall = time.monotonic() - since.wall
        if wall <= 0:
            return 0.0
        foreign = (machine_busy_seconds() - since.busy) - (self._ours() - since.ours)
        return max(0.0, foreign / wall)

    def _ours(self) -> float:
        return groups_cpu_seconds(self.groups) + own_cpu_seconds()
