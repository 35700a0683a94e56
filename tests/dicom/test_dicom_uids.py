from __future__ import annotations

import pytest

from dicomcore.uids import is_valid_uid


@pytest.mark.parametrize(
    "value",
    ["0", "1.2", "1.2.840.10008.1.2.1", "2.25.0", "1.0.0.10", "1." + "2" * 62],
)
def test_valid_uids(value: str) -> None:
    assert is_valid_uid(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "1.",
        ".1",
        "1..2",
        "1.02",
        "01.2",
        "1.2.a",
        "1.2 ",
        "1.2\x00",
        "1.2.-3",
        "1.2.\u0663",  # an Arabic-Indic digit is a digit, but not an ASCII one
        "1." + "2" * 63,  # 65 characters
    ],
)
def test_invalid_uids(value: str) -> None:
    assert not is_valid_uid(value)
