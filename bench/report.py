"""Collecting per-repeat values, and presenting medians as a table and as JSON."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SERVER_KEYS = ("ours", "orthanc")
SERVER_LABELS = {"ours": "ours", "orthanc": "Orthanc"}


@dataclass
class Row:
    name: str
    unit: str
    better: str  # "higher" or "lower"
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    result_counts: dict[str, int | None] = field(default_factory=dict)

    def median(self, key: str) -> float | None:
        values = self.values.get(key)
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        ours, theirs = self.median("ours"), self.median("orthanc")
        if ours is None or theirs is None or theirs == 0:
            return None
        return ours / theirs

    def verdict(self) -> str:
        """Plain words, so nobody has to remember which way each ratio points."""
        ratio = self.ratio()
        if ratio is None:
            return ""
        if ratio == 0:
            return "n/a"
        factor = ratio if self.better == "higher" else 1 / ratio
        if 0.95 <= factor <= 1.05:
            return "about equal"
        return f"{factor:.2f}x better" if factor > 1 else f"{1 / factor:.2f}x worse"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workload": self.name, "unit": self.unit, "better": self.better}
        for key in SERVER_KEYS:
            if key in self.values or key in self.errors:
                out[key] = {
                    "median": self.median(key),
                    "values": self.values.get(key, []),
                    "errors": self.errors.get(key, []),
                    "result_count": self.result_counts.get(key),
                }
        out["ratio_ours_over_orthanc"] = self.ratio()
        out["ours_vs_orthanc"] = self.verdict()
        return out


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def row(self, name: str, unit: str, better: str) -> Row:
        if name not in self.rows:
            self.rows[name] = Row(name, unit, better)
        return self.rows[name]

    def add(self, name: str, unit: str, better: str, key: str, value: float) -> None:
        self.row(name, unit, better).values.setdefault(key, []).append(value)

    def error(self, name: str, unit: str, better: str, key: str, message: str) -> None:
        self.row(name, unit, better).errors.setdefault(key, []).append(message)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(row: Row, key: str) -> str:
    text = fmt(row.median(key))
    if row.errors.get(key):
        text = "ERR" if text == "-" else f"{text} (!)"
    return text


def table(results: Results, keys: list[str]) -> str:
    header = ["workload", "unit", "better"] + [SERVER_LABELS[k] for k in keys]
    if len(keys) == 2:
        header.append("ours vs Orthanc")
    lines = [header]
    for row in results.rows.values():
        line = [row.name, row.unit, "higher" if row.better == "higher" else "lower"]
        line += [cell(row, k) for k in keys]
        if len(keys) == 2:
            line.append(row.verdict())
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = set(range(3, 3 + len(keys)))

    def render(line: list[str]) -> str:
        parts = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "packages": {p: _version(p) for p in ("pydicom", "numpy", "pillow", "uvicorn", "starlette")},
    }


class Journal:
    """What every benchmark run does with its log, its notes and its load client."""

    started: float
    notes: list[str]
    client: Any

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(f"NOTE: {message}")

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.client is not None
        return self.client.call(**cmd)
