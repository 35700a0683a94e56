"""The index's stored JSON is read with orjson, and text only :mod:`json` reads (``NaN``,
``Infinity``: what ``json.dumps`` writes for an odd number) still reads the same."""

from __future__ import annotations

import json
import math

import pytest

from indexing import stored_json

SAMPLES = [
    {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Zoë", "Ideographic": "山田^太郎"}]}},
    {"00280030": {"vr": "DS", "Value": [0.1, 1e-300, 12345678901234567890]}, "x": None, "y": [True, False]},
    ["CT", "MR"],
    {"emoji": "\U0001f600", "escaped": "a\"b\u0000c\\d"},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_reads_what_json_wrote_as_json_reads_it(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert stored_json.load(text) == json.loads(text)
        assert stored_json.load(text.encode()) == json.loads(text)


def test_reads_the_numbers_only_json_writes() -> None:
    text = json.dumps({"00181030": {"vr": "DS", "Value": [float("nan"), float("inf"), -float("inf")]}})
    assert "NaN" in text
    nan, inf, minus_inf = stored_json.load(text)["00181030"]["Value"]
    assert math.isnan(nan) and inf == math.inf and minus_inf == -math.inf


def test_text_that_is_no_json_is_still_refused() -> None:
    with pytest.raises(json.JSONDecodeError):
        stored_json.load('{"00100010": ')


def test_an_answer_with_what_orjson_refuses_is_still_written() -> None:
    from dicomweb.api.qido.routes import _encoded

    results = [{"00200013": {"vr": "IS", "Value": [2**70]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Zoë"}]}}]
    assert json.loads(_encoded(results)) == results
    assert "Zoë".encode() in _encoded(results)
