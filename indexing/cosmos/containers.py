"""Every Cosmos container the server uses, as infra/ deploys them.

``python -m indexing.cosmos.containers`` rewrites ``infra/cosmos-containers.json`` from the
definitions in code; a test keeps the two equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from indexing.cosmos.database import ContainerSpec
from indexing.cosmos.extended_tag_store import CONTAINER as EXTENDED_TAGS_CONTAINER
from indexing.cosmos.feed_store import CONTAINER as FEED_CONTAINER
from indexing.cosmos.operation_store import CONTAINER as OPERATIONS_CONTAINER
from indexing.cosmos.schema import CONTAINER as INDEX_CONTAINER


def containers() -> list[ContainerSpec]:
    """The index, the change feed, the long-running operations and the extended query tags."""
    return [INDEX_CONTAINER, FEED_CONTAINER, OPERATIONS_CONTAINER, EXTENDED_TAGS_CONTAINER]


def containers_json() -> str:
    return json.dumps([spec.to_json() for spec in containers()], indent=2) + "\n"


INFRA_FILE = Path(__file__).resolve().parents[2] / "infra" / "cosmos-containers.json"

if __name__ == "__main__":
    INFRA_FILE.write_text(containers_json())
    print(f"wrote {INFRA_FILE}", file=sys.stderr)
