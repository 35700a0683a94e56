"""bench.dicomjson_bench runs and reports a figure for each of its instances."""

from __future__ import annotations

import re

import pytest

from bench import dicomjson_bench


def test_dicomjson_bench_reports_each_instance(capsys: pytest.CaptureFixture[str]) -> None:
    assert dicomjson_bench.main(["--repeat", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    medians = [line for line in lines if re.search(r"median +[0-9.]+ µs", line)]
    assert [line.split("  ")[0] for line in medians] == list(dicomjson_bench.INSTANCE_NAMES)
    assert lines[-1].startswith("load average")
