"""The request-unit estimate behind the cloud cost table (bench.cloud_prices): Microsoft's
documented figures, used only where the Cosmos DB test server reports its constant 1 RU."""

from __future__ import annotations

import pytest

from bench.cloud_prices import dollars_per_million, estimated_ru, read_ru, write_ru


def test_point_reads_follow_the_documented_1_kb_and_100_kb_figures() -> None:
    assert read_ru(1024) == pytest.approx(1.0)
    assert read_ru(100 * 1024) == pytest.approx(10.0)
    assert read_ru(10) == pytest.approx(1.0)  # never below the 1 KB figure


def test_writes_cost_an_insert_and_a_replace_twice_that() -> None:
    assert write_ru("create", 1024) == pytest.approx(5.5)
    assert write_ru("replace", 1024) == pytest.approx(11.0)


def test_a_batch_costs_the_sum_of_its_operations_and_a_real_charge_wins() -> None:
    batch = {"kind": "write", "op": "batch", "charge": 1.0, "operations": [["create", 1024], ["replace", 1024]]}
    assert estimated_ru(batch) == pytest.approx(16.5)
    assert estimated_ru({**batch, "charge": 7.43}) == pytest.approx(7.43)  # Azure's own figure
    assert estimated_ru({"kind": "query", "charge": 1.0, "received": 200}) == pytest.approx(3.19)


def test_dollars_per_million_operations() -> None:
    # 10 RU at $0.279 per million RU, plus 3 blob writes at $0.055 per 10,000.
    assert dollars_per_million(10.0, {"write": 3}) == pytest.approx(2.79 + 16.5)
