"""infra/ deploys the Cosmos containers the code creates: the two must not drift apart."""

from __future__ import annotations

from indexing.cosmos.containers import INFRA_FILE, containers_json


def test_infra_file_matches_the_code() -> None:
    assert INFRA_FILE.read_text() == containers_json(), (
        "infra/cosmos-containers.json is out of date: run `python -m indexing.cosmos.containers`")
