"""The QIDO query parser: every kind of match, every control parameter, every error."""

from __future__ import annotations

import pytest

from indexing.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Level,
    Match,
    MatchKind,
    Query,
    QueryError,
    parse_query,
    returned_tags,
)
from indexing.values import number_key

STUDY, SERIES, INSTANCE = Level.STUDY, Level.SERIES, Level.INSTANCE
UID_A, UID_B, UID_C = "1.2.3", "1.2.4", "1.2.5"


def only_match(level: Level, key: str, value: str, **kwargs: object) -> Match:
    query = parse_query(level, [(key, value)], **kwargs)  # type: ignore[arg-type]
    assert len(query.matches) == 1
    return query.matches[0]


def error_of(level: Level, params: list[tuple[str, str]], **kwargs: object) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse_query(level, params, **kwargs)  # type: ignore[arg-type]
    return caught.value


# -- keys ---------------------------------------------------------------------------------


def test_no_parameters_gives_defaults() -> None:
    query = parse_query(STUDY, [])
    assert query == Query(level=STUDY, limit=DEFAULT_LIMIT, offset=0)


def test_keyword_and_tag_keys_mean_the_same() -> None:
    by_keyword = only_match(STUDY, "PatientID", "P1")
    assert only_match(STUDY, "00100020", "P1") == by_keyword
    assert only_match(STUDY, "0020000d", UID_A).tag == "0020000D"  # hex in any case
    assert by_keyword == Match("00100020", STUDY, "LO", MatchKind.SINGLE, ("P1",))


def test_sequence_item_keys_by_keyword_or_tag() -> None:
    expected = Match("00400275.00401001", SERIES, "SH", MatchKind.SINGLE, ("RP1",))
    assert only_match(SERIES, "RequestAttributesSequence.RequestedProcedureID", "RP1") == expected
    assert only_match(SERIES, "00400275.00401001", "RP1") == expected
    assert only_match(SERIES, "00400275.RequestedProcedureID", "RP1") == expected


def test_higher_level_keys_are_allowed() -> None:
    assert only_match(INSTANCE, "PatientID", "P1").level is STUDY
    assert only_match(INSTANCE, "Modality", "CT").level is SERIES
    assert only_match(SERIES, "StudyDate", "20240102").level is STUDY


def test_path_uids_are_kept() -> None:
    query = parse_query(INSTANCE, [], study_uid=UID_A, series_uid=UID_B)
    assert (query.study_uid, query.series_uid) == (UID_A, UID_B)


# -- universal matching ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "*"])
def test_empty_value_or_lone_star_is_universal(value: str) -> None:
    query = parse_query(STUDY, [("PatientName", value), ("StudyDate", value)])
    assert query.matches == ()
    assert {"00100010", "00080020"} <= query.include_tags


def test_return_only_attribute_with_empty_value_is_included() -> None:
    query = parse_query(STUDY, [("NumberOfStudyRelatedInstances", "")])
    assert query.matches == () and "00201208" in query.include_tags


def test_lower_level_key_without_value_is_ignored() -> None:
    query = parse_query(STUDY, [("SOPInstanceUID", "")])
    assert query.matches == () and "00080018" not in query.include_tags


# -- single values and lists ----------------------------------------------------------------


def test_uid_lists_by_comma_backslash_or_repeated_key() -> None:
    expected = (UID_A, UID_B, UID_C)
    assert only_match(STUDY, "StudyInstanceUID", f"{UID_A},{UID_B},{UID_C}").values == expected
    assert only_match(STUDY, "StudyInstanceUID", f"{UID_A}\\{UID_B}\\{UID_C}").values == expected
    query = parse_query(STUDY, [("StudyInstanceUID", UID_A), ("0020000D", f"{UID_B},{UID_C}")])
    assert query.matches[0].kind is MatchKind.UID_LIST and query.matches[0].values == expected


def test_one_uid_is_a_single_value_match() -> None:
    assert only_match(STUDY, "StudyInstanceUID", UID_A).kind is MatchKind.SINGLE


def test_code_string_alternatives_by_comma_or_backslash() -> None:
    assert only_match(STUDY, "ModalitiesInStudy", "CT,MR").values == ("CT", "MR")
    assert only_match(SERIES, "Modality", "CT\\MR").values == ("CT", "MR")


def test_long_string_keeps_commas() -> None:
    assert only_match(STUDY, "StudyDescription", "Chest, PA").values == ("Chest, PA",)


def test_numbers_are_normalized() -> None:
    assert only_match(INSTANCE, "InstanceNumber", "007").values == (number_key("IS", "7"),)
    assert only_match(INSTANCE, "Rows", "512").values == (number_key("US", "512"),)


def test_number_keys_are_ordered_like_the_numbers() -> None:
    numbers = ["-1e300", "-2.5", "-1", "-0.001", "0", "1e-9", "1", "1.5", "2", "10", "100", "4294967295", "1e300"]
    keys = [number_key("DS", number) for number in numbers]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert number_key("DS", "-0") == number_key("DS", "0") == number_key("DS", "+0.0e5")


def test_number_ranges() -> None:
    match = only_match(INSTANCE, "InstanceNumber", "2-10")
    assert match.kind is MatchKind.RANGE
    assert (match.lower, match.upper) == (number_key("IS", "2"), number_key("IS", "10"))
    assert only_match(INSTANCE, "InstanceNumber", "-5").values == (number_key("IS", "-5"),)  # a negative number
    assert only_match(INSTANCE, "InstanceNumber", "-+5").upper == number_key("IS", "5")
    assert only_match(INSTANCE, "InstanceNumber", "--5").upper == number_key("IS", "-5")
    assert only_match(INSTANCE, "InstanceNumber", "-5-").lower == number_key("IS", "-5")


# -- wildcards and names --------------------------------------------------------------------


def test_wildcards_in_text() -> None:
    match = only_match(STUDY, "AccessionNumber", "AC?-*")
    assert match.kind is MatchKind.WILDCARD and match.values == ("AC?-*",)


def test_person_names_are_upper_cased_and_trimmed() -> None:
    assert only_match(STUDY, "PatientName", "doe^john^^").values == ("DOE^JOHN",)
    assert only_match(STUDY, "PatientName", "doe^j*").kind is MatchKind.WILDCARD


def test_person_name_query_uses_the_alphabetic_group() -> None:
    assert only_match(STUDY, "PatientName", "Yamada^Tarou=山田^太郎").values == ("YAMADA^TAROU",)


def test_fuzzy_matching_applies_to_person_names_only() -> None:
    query = parse_query(STUDY, [("PatientName", "joh"), ("fuzzymatching", "TRUE"), ("PatientID", "P1")])
    kinds = {match.tag: match.kind for match in query.matches}
    assert query.fuzzy and kinds == {"00100010": MatchKind.FUZZY, "00100020": MatchKind.SINGLE}


def test_fuzzy_matching_with_a_wildcard_is_wildcard_matching() -> None:
    query = parse_query(STUDY, [("PatientName", "DO*"), ("fuzzymatching", "true")])
    assert query.matches[0].kind is MatchKind.WILDCARD


def test_fuzzymatching_false() -> None:
    query = parse_query(STUDY, [("PatientName", "DOE"), ("fuzzymatching", "false")])
    assert not query.fuzzy and query.matches[0].kind is MatchKind.SINGLE


# -- dates and times ------------------------------------------------------------------------


def test_single_date() -> None:
    assert only_match(STUDY, "StudyDate", "20240102") == Match("00080020", STUDY, "DA", MatchKind.SINGLE, ("20240102",))


@pytest.mark.parametrize(
    ("value", "lower", "upper"),
    [
        ("20240101-20240131", "20240101", "20240131"),
        ("20240101-", "20240101", None),
        ("-20240131", None, "20240131"),
    ],
)
def test_date_ranges(value: str, lower: str | None, upper: str | None) -> None:
    match = only_match(STUDY, "StudyDate", value)
    assert (match.kind, match.lower, match.upper) == (MatchKind.RANGE, lower, upper)


def test_partial_time_names_a_period() -> None:
    match = only_match(STUDY, "StudyTime", "10")
    assert (match.kind, match.lower, match.upper) == (MatchKind.RANGE, "100000.000000", "105959.999999")


def test_time_range() -> None:
    match = only_match(STUDY, "StudyTime", "1015-113000.5")
    assert (match.lower, match.upper) == ("101500.000000", "113000.599999")


def test_datetime_range_with_offsets() -> None:
    match = only_match(INSTANCE, "AcquisitionDateTime", "20240102+0100-202401031200-0500")
    assert (match.lower, match.upper) == ("20240102000000.000000", "20240103120059.999999")


def test_datetime_with_offset_alone_is_a_single_value() -> None:
    match = only_match(INSTANCE, "AcquisitionDateTime", "20240102101500-0500")
    assert (match.lower, match.upper) == ("20240102101500.000000", "20240102101500.999999")


# -- includefield, limit, offset ------------------------------------------------------------


def test_includefield_repeated_and_comma_separated() -> None:
    query = parse_query(SERIES, [("includefield", "BodyPartExamined,00081030"), ("includefield", "Manufacturer")])
    assert {"00180015", "00081030", "00080070"} <= query.include_tags and not query.include_all


def test_includefield_all() -> None:
    assert parse_query(STUDY, [("includefield", "all")]).include_all


def test_includefield_of_a_lower_level_or_unindexed_attribute_is_ignored() -> None:
    query = parse_query(STUDY, [("includefield", "SOPInstanceUID,ContrastBolusAgent")])
    assert query.include_tags == frozenset()
    assert query.header_tags == frozenset({"00180010"})  # answered from headers by instance searches


def test_limit_and_offset() -> None:
    query = parse_query(STUDY, [("limit", "25"), ("offset", "50")])
    assert (query.limit, query.offset) == (25, 50)


def test_limit_above_the_maximum_is_lowered() -> None:
    assert parse_query(STUDY, [("limit", str(MAX_LIMIT * 10))]).limit == MAX_LIMIT


def test_control_parameter_names_are_case_insensitive() -> None:
    query = parse_query(STUDY, [("LIMIT", "3"), ("IncludeField", "StudyDescription")])
    assert query.limit == 3 and "00081030" in query.include_tags


def test_double_encoded_values_are_decoded_again() -> None:
    assert only_match(STUDY, "PatientName", "DOE%5EJ%2A") == only_match(STUDY, "PatientName", "DOE^J*")


# -- what is returned -----------------------------------------------------------------------


def test_returned_tags_depend_on_the_resource() -> None:
    all_series = returned_tags(parse_query(SERIES, []))
    study_series = returned_tags(parse_query(SERIES, [], study_uid=UID_A))
    assert "00100020" in all_series and "00100020" not in study_series  # study defaults
    assert {"0020000D", "0020000E", "00080060", "00201209"} <= study_series
    one_series = returned_tags(parse_query(INSTANCE, [], study_uid=UID_A, series_uid=UID_B))
    assert {"0020000D", "0020000E", "00080018", "00080016", "00200013"} <= one_series
    assert "00080060" not in one_series


def test_returned_tags_include_matched_and_included_attributes() -> None:
    query = parse_query(STUDY, [("PatientAge", "040Y"), ("includefield", "SOPClassesInStudy")])
    assert {"00101010", "00080062"} <= returned_tags(query)


def test_include_all_returns_optional_attributes() -> None:
    assert "00180015" in returned_tags(parse_query(SERIES, [("includefield", "all")], study_uid=UID_A))


# -- errors: each names the parameter -------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "params", "parameter", "fragment"),
    [
        (STUDY, [("Foo", "1")], "Foo", "unknown attribute 'Foo' in 'Foo=1'"),
        (STUDY, [("includefield", "Bogus")], "Bogus", "unknown attribute 'Bogus'"),
        (STUDY, [("ContrastBolusAgent", "x")], "ContrastBolusAgent", "not supported for searching"),
        (
            STUDY,
            [("SOPInstanceUID", UID_A)],
            "SOPInstanceUID",
            "(instance level) cannot be matched when searching for studies",
        ),
        (STUDY, [("Modality", "CT")], "Modality", "(series level)"),
        (SERIES, [("InstanceNumber", "1")], "InstanceNumber", "(instance level)"),
        (STUDY, [("NumberOfStudyRelatedSeries", "2")], "NumberOfStudyRelatedSeries", "return-only"),
        (STUDY, [("PatientID", "1"), ("00100020", "2")], "00100020", "more than once"),
        (STUDY, [("StudyInstanceUID", "1.2.abc")], "StudyInstanceUID", "invalid UID '1.2.abc'"),
        (STUDY, [("StudyInstanceUID", "1.2.*")], "StudyInstanceUID", "invalid UID"),
        (STUDY, [("StudyDate", "20241301")], "StudyDate", "invalid date or range in 'StudyDate=20241301'"),
        (STUDY, [("StudyDate", "2024-01-02")], "StudyDate", "invalid date"),
        (STUDY, [("StudyDate", "20240101-2024013")], "StudyDate", "invalid date"),
        (STUDY, [("StudyDate", "-")], "StudyDate", "invalid date"),
        (STUDY, [("StudyDate", "2024*")], "StudyDate", "invalid date"),
        (STUDY, [("StudyDate", "20240101\\20240102")], "StudyDate", "multiple values"),
        (STUDY, [("StudyTime", "2500")], "StudyTime", "invalid time"),
        (STUDY, [("StudyTime", "10.5")], "StudyTime", "invalid time"),
        (INSTANCE, [("AcquisitionDateTime", "20241399")], "AcquisitionDateTime", "invalid date-time"),
        (STUDY, [("PatientAge", "04*")], "PatientAge", "wildcards are not allowed for VR AS"),
        (INSTANCE, [("InstanceNumber", "one")], "InstanceNumber", "'one' is not a valid IS number"),
        (INSTANCE, [("InstanceNumber", "1.5")], "InstanceNumber", "not a valid IS number"),
        (STUDY, [("limit", "ten")], "limit", "limit must be an integer"),
        (STUDY, [("limit", "-1")], "limit", "limit must be an integer"),
        (STUDY, [("limit", "0")], "limit", "at least 1"),
        (STUDY, [("offset", "-5")], "offset", "offset must be an integer"),
        (STUDY, [("offset", "1.5")], "offset", "offset must be an integer"),
        (STUDY, [("limit", "1"), ("limit", "2")], "limit", "more than once"),
        (STUDY, [("fuzzymatching", "yes")], "fuzzymatching", "fuzzymatching must be true or false"),
    ],
)
def test_errors(level: Level, params: list[tuple[str, str]], parameter: str, fragment: str) -> None:
    error = error_of(level, params)
    assert error.parameter == parameter
    assert fragment in error.message and fragment in str(error)


@pytest.mark.parametrize(("study", "series"), [("1.2.x", None), (UID_A, "not-a-uid"), ("1." + "2" * 70, None)])
def test_invalid_path_uids(study: str, series: str | None) -> None:
    error = error_of(INSTANCE, [], study_uid=study, series_uid=series)
    assert "Instance UID" in error.message and "in the path" in error.message
