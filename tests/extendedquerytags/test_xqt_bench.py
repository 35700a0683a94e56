"""bench/xqt_bench.py at a tiny size: it runs, and each extended query finds what its
built-in twin finds (the bench raises otherwise), so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import pytest

from bench.xqt_bench import PAIRS, main


def test_the_extended_tag_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--reindex-instances", "100", "--instances", "200", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "reindex: 100 instances, 4 tags" in out
    assert all(label in out for label, _, _ in PAIRS)
