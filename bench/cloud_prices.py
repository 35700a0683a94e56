"""What a counted call costs: list prices, and request units estimated where the Cosmos DB
test server cannot say.

Prices (US dollars, pay-as-you-go list prices, region West US; sources and dates in
docs/performance.md, "Cloud cost per request"): the Azure retail prices that infracost's
golden test files record, regenerated 2024-04-04 and unchanged in that repository through
its 2026-08-21 snapshot (`internal/providers/terraform/azure/testdata/
cosmosdb_sql_container_test/*.golden`, `storage_account_test/*.golden`).

Request units: the Cosmos DB test server reports 1 RU for every call (a constant in its
response handler), so the real charge of a call is *estimated* from Microsoft's documented
figures (learn.microsoft.com, "Optimize request cost in Azure Cosmos DB"):

- a point read of a 1 KB item costs 1 RU and of a 100 KB item 10 RU (straight line between,
  and beyond, as an assumption: the page gives those two points only);
- inserting a 1 KB item costs about 5.5 RU (without indexing; our containers index a
  handful of paths, so this is a lower bound), scaled with the size like a read;
  replacing costs twice an insert; a patch and an upsert are priced as a replace, a delete
  as the insert of a 1 KB item (the page gives no figure for them);
- a query costs about 1 RU per KB returned ("a query returning 1000 1-KB items costs
  1000"), and at least 3.19 RU (the page's query-metrics example that returns one item);
  a cross-partition query is charged in every physical partition it visits, and a
  serverless container under 50 GB has one, so it is priced like the others here;
- a transactional batch costs the sum of its operations.

Against Azure itself the call log holds each call's real charge (``charge``), which then
replaces the estimate.
"""

from __future__ import annotations

from typing import Any

COSMOS_SERVERLESS_PER_MILLION_RU = 0.279
"""USD per 1,000,000 request units, Azure Cosmos DB serverless, West US."""

BLOB_HOT_LRS_PER_10K = {"write": 0.055, "list": 0.055, "read": 0.0044, "other": 0.0044}
"""USD per 10,000 operations, Blob Storage (StorageV2) hot tier, LRS, West US: write,
list-and-create-container, read, all other operations (deletes are priced as "other",
an upper bound)."""

_TEST_SERVER_CHARGE = 1.0
_READ_KB, _READ_RU = (1.0, 100.0), (1.0, 10.0)
_INSERT_1KB_RU = 5.5
_QUERY_MIN_RU = 3.19


def read_ru(size_bytes: int) -> float:
    """A point read of an item of this size (documented: 1 KB → 1 RU, 100 KB → 10 RU)."""
    kb = max(size_bytes / 1024, _READ_KB[0])
    slope = (_READ_RU[1] - _READ_RU[0]) / (_READ_KB[1] - _READ_KB[0])
    return _READ_RU[0] + slope * (kb - _READ_KB[0])


def write_ru(op: str, size_bytes: int) -> float:
    """A write of one item: an insert scales like a read from ~5.5 RU at 1 KB."""
    insert = _INSERT_1KB_RU * read_ru(size_bytes)
    if op == "create":
        return insert
    if op == "delete":
        return _INSERT_1KB_RU
    return 2 * insert  # replace (documented: twice an insert); patch and upsert likewise


def query_ru(received_bytes: int) -> float:
    return max(_QUERY_MIN_RU, received_bytes / 1024)


def estimated_ru(call: dict[str, Any]) -> float:
    """The request units of one logged Cosmos call: the server's own charge when it is a
    real one, else the estimate above."""
    charge = float(call.get("charge") or 0.0)
    if charge and charge != _TEST_SERVER_CHARGE:
        return charge
    kind = call["kind"]
    if kind in ("query", "list"):
        return query_ru(int(call.get("received", 0)))
    if kind == "read":
        return read_ru(int(call.get("received", 0)))
    if kind == "delete":
        return write_ru("delete", 0)
    if call.get("op") == "batch":
        return sum(write_ru(op, size) for op, size in call.get("operations", []))
    return write_ru(str(call.get("op", "create")), int(call.get("sent", 0)))


def dollars_per_million(request_units: float, blob_ops: dict[str, int]) -> float:
    """USD for one million of an operation that costs ``request_units`` RU and these blob
    operations (by price class) each time."""
    cosmos = request_units * COSMOS_SERVERLESS_PER_MILLION_RU  # RU per op × 1e6 ops / 1e6 RU
    blob = sum(count * 100 * BLOB_HOT_LRS_PER_10K[kind] for kind, count in blob_ops.items())  # 1e6 / 1e4
    return cosmos + blob
