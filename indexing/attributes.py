"""The attributes QIDO-RS can match on and return, kept as data.

Where the entries come from:

* PS3.18 Table 10.6.1-5 (required matching attributes): every entry marked ``MATCH``
  that the table lists, per level.
* PS3.18 Tables 10.6.3-3 (study), 10.6.3-4 (series) and 10.6.3-5 (instance), the
  search response payloads: the entries marked ``DEFAULT`` (returned without
  ``includefield``). Retrieve URL (0008,1190) is in those tables too; it is made by the
  HTTP layer, not stored, so it is not listed here.
* PS3.3 module tables, return-only entries (roles 0): the rest of the study's and the
  series' modules, stored per level so ``includefield`` can return them. Any other
  instance attribute is answered from the instance's stored header, not from this table.
* PS3.4 C.6.1.1 / C.6.2.1 optional keys: a few extra attributes clients commonly search
  or display (Study Description, Body Part Examined, Manufacturer, ...). Study
  Description is also returned by default because every viewer shows it.

The store reads which attributes to index from this table, never from a fixed column
list: adding an entry (an "extended query tag") makes the attribute searchable for
instances indexed from then on; instances indexed earlier need a reindex from their
stored records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class Level(StrEnum):
    """A query/retrieve level of the DICOM information model."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def depth(self) -> int:
        """0 for study, 1 for series, 2 for instance: lower levels are deeper."""
        return _DEPTH[self]


_DEPTH = {Level.STUDY: 0, Level.SERIES: 1, Level.INSTANCE: 2}

# Roles, combined with "|" in the table below.
MATCH = 1
"""Usable as a query key (otherwise only universal matching / includefield)."""
DEFAULT = 2
"""Returned even when not asked for with includefield."""
COMPUTED = 4
"""Made by the store from the entities below (counts, modalities), not read from a header."""


@dataclass(frozen=True)
class Attribute:
    keyword: str
    """Keyword from PS3.6; a sequence item attribute is ``Sequence.Keyword``."""
    tag: str
    """``ggggeeee`` upper-case hex; a sequence item attribute is ``ssssssss.ggggeeee``."""
    vr: str
    level: Level
    roles: int

    @property
    def matchable(self) -> bool:
        return bool(self.roles & MATCH)

    @property
    def default(self) -> bool:
        return bool(self.roles & DEFAULT)

    @property
    def computed(self) -> bool:
        return bool(self.roles & COMPUTED)

    @property
    def path(self) -> tuple[str, ...]:
        """The tags from the dataset root to the attribute."""
        return tuple(self.tag.split("."))

    @property
    def top_tag(self) -> str:
        """The top-level tag that carries the value in a returned dataset."""
        return self.path[0]


_S, _E, _I = Level.STUDY, Level.SERIES, Level.INSTANCE

STANDARD_ATTRIBUTES: tuple[tuple[str, str, str, Level, int], ...] = (
    # Study level: PS3.18 Tables 10.6.1-5 and 10.6.3-3.
    ("SpecificCharacterSet", "00080005", "CS", _S, DEFAULT),
    ("StudyDate", "00080020", "DA", _S, MATCH | DEFAULT),
    ("StudyTime", "00080030", "TM", _S, MATCH | DEFAULT),
    ("AccessionNumber", "00080050", "SH", _S, MATCH | DEFAULT),
    ("InstanceAvailability", "00080056", "CS", _S, DEFAULT | COMPUTED),
    ("ModalitiesInStudy", "00080061", "CS", _S, MATCH | DEFAULT | COMPUTED),
    ("SOPClassesInStudy", "00080062", "UI", _S, MATCH | COMPUTED),
    ("ReferringPhysicianName", "00080090", "PN", _S, MATCH | DEFAULT),
    ("TimezoneOffsetFromUTC", "00080201", "SH", _S, DEFAULT),
    ("StudyDescription", "00081030", "LO", _S, MATCH | DEFAULT),
    ("NameOfPhysiciansReadingStudy", "00081060", "PN", _S, MATCH),
    ("PatientName", "00100010", "PN", _S, MATCH | DEFAULT),
    ("PatientID", "00100020", "LO", _S, MATCH | DEFAULT),
    ("IssuerOfPatientID", "00100021", "LO", _S, MATCH | DEFAULT),
    ("PatientBirthDate", "00100030", "DA", _S, MATCH | DEFAULT),
    ("PatientSex", "00100040", "CS", _S, MATCH | DEFAULT),
    ("PatientAge", "00101010", "AS", _S, MATCH),
    ("StudyInstanceUID", "0020000D", "UI", _S, MATCH | DEFAULT),
    ("StudyID", "00200010", "SH", _S, MATCH | DEFAULT),
    ("NumberOfStudyRelatedSeries", "00201206", "IS", _S, DEFAULT | COMPUTED),
    ("NumberOfStudyRelatedInstances", "00201208", "IS", _S, DEFAULT | COMPUTED),
    # Study level, return-only: the rest of the Patient, General Study and Patient Study
    # modules (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2), kept so includefield (or =all) gets them.
    ("IssuerOfAccessionNumberSequence", "00080051", "SQ", _S, 0),
    ("ProcedureCodeSequence", "00081032", "SQ", _S, 0),
    ("PhysiciansOfRecord", "00081048", "PN", _S, 0),
    ("AdmittingDiagnosesDescription", "00081080", "LO", _S, 0),
    ("ReferencedStudySequence", "00081110", "SQ", _S, 0),
    ("PatientBirthTime", "00100032", "TM", _S, 0),
    ("OtherPatientIDsSequence", "00101002", "SQ", _S, 0),
    ("PatientSize", "00101020", "DS", _S, 0),
    ("PatientWeight", "00101030", "DS", _S, 0),
    ("EthnicGroup", "00102160", "SH", _S, 0),
    ("PatientSpeciesDescription", "00102201", "LO", _S, 0),
    ("PatientComments", "00104000", "LT", _S, 0),
    # Series level: PS3.18 Tables 10.6.1-5 and 10.6.3-4.
    ("SpecificCharacterSet", "00080005", "CS", _E, DEFAULT),
    ("SeriesDate", "00080021", "DA", _E, MATCH),
    ("SeriesTime", "00080031", "TM", _E, MATCH),
    ("Modality", "00080060", "CS", _E, MATCH | DEFAULT),
    ("Manufacturer", "00080070", "LO", _E, MATCH),
    ("InstitutionName", "00080080", "LO", _E, MATCH),
    ("TimezoneOffsetFromUTC", "00080201", "SH", _E, DEFAULT),
    ("StationName", "00081010", "SH", _E, MATCH),
    ("SeriesDescription", "0008103E", "LO", _E, MATCH | DEFAULT),
    ("PerformingPhysicianName", "00081050", "PN", _E, MATCH),
    ("BodyPartExamined", "00180015", "CS", _E, MATCH),
    ("ProtocolName", "00181030", "LO", _E, MATCH),
    ("SeriesInstanceUID", "0020000E", "UI", _E, MATCH | DEFAULT),
    ("SeriesNumber", "00200011", "IS", _E, MATCH | DEFAULT),
    ("Laterality", "00200060", "CS", _E, MATCH),
    ("NumberOfSeriesRelatedInstances", "00201209", "IS", _E, DEFAULT | COMPUTED),
    ("PerformedProcedureStepStartDate", "00400244", "DA", _E, MATCH | DEFAULT),
    ("PerformedProcedureStepStartTime", "00400245", "TM", _E, MATCH | DEFAULT),
    ("RequestAttributesSequence", "00400275", "SQ", _E, DEFAULT),
    ("RequestAttributesSequence.ScheduledProcedureStepID", "00400275.00400009", "SH", _E, MATCH),
    ("RequestAttributesSequence.RequestedProcedureID", "00400275.00401001", "SH", _E, MATCH),
    # Series level, return-only: the rest of the General Series, Frame of Reference and
    # General Equipment modules (PS3.3 C.7.3.1, C.7.4.1, C.7.5.1).
    ("InstitutionAddress", "00080081", "ST", _E, 0),
    ("InstitutionalDepartmentName", "00081040", "LO", _E, 0),
    ("OperatorsName", "00081070", "PN", _E, 0),
    ("ManufacturerModelName", "00081090", "LO", _E, 0),
    ("ReferencedPerformedProcedureStepSequence", "00081111", "SQ", _E, 0),
    ("AnatomicalOrientationType", "00102210", "CS", _E, 0),
    ("DeviceSerialNumber", "00181000", "LO", _E, 0),
    ("SoftwareVersions", "00181020", "LO", _E, 0),
    ("PatientPosition", "00185100", "CS", _E, 0),
    ("FrameOfReferenceUID", "00200052", "UI", _E, 0),
    ("PositionReferenceIndicator", "00201040", "LO", _E, 0),
    ("PerformedProcedureStepID", "00400253", "SH", _E, 0),
    ("PerformedProcedureStepDescription", "00400254", "LO", _E, 0),
    # Instance level: PS3.18 Tables 10.6.1-5 and 10.6.3-5.
    ("SpecificCharacterSet", "00080005", "CS", _I, DEFAULT),
    ("ImageType", "00080008", "CS", _I, MATCH),
    ("SOPClassUID", "00080016", "UI", _I, MATCH | DEFAULT),
    ("SOPInstanceUID", "00080018", "UI", _I, MATCH | DEFAULT),
    ("ContentDate", "00080023", "DA", _I, MATCH),
    ("AcquisitionDateTime", "0008002A", "DT", _I, MATCH),
    ("ContentTime", "00080033", "TM", _I, MATCH),
    ("InstanceAvailability", "00080056", "CS", _I, DEFAULT | COMPUTED),
    ("TimezoneOffsetFromUTC", "00080201", "SH", _I, DEFAULT),
    ("AcquisitionNumber", "00200012", "IS", _I, MATCH),
    ("InstanceNumber", "00200013", "IS", _I, MATCH | DEFAULT),
    ("NumberOfFrames", "00280008", "IS", _I, MATCH | DEFAULT),
    ("Rows", "00280010", "US", _I, MATCH | DEFAULT),
    ("Columns", "00280011", "US", _I, MATCH | DEFAULT),
    ("BitsAllocated", "00280100", "US", _I, MATCH | DEFAULT),
    # Instance level, return-only: File Meta values, which the stored metadata (like WADO
    # metadata) leaves out; the index record adds them (indexing/records.py). Any other
    # attribute of an instance is answered from its stored header (dicomweb/api/qido).
    ("TransferSyntaxUID", "00020010", "UI", _I, 0),
)
"""(keyword, tag, VR, level, roles): the table an operator extends."""


class AttributeTable:
    """Lookups over a list of :class:`Attribute` entries.

    A tag may appear at several levels (Specific Character Set is returned at each);
    a matchable tag appears at one level only, so a query key has one meaning.
    """

    def __init__(self, entries: Iterable[Attribute]) -> None:
        self.entries: tuple[Attribute, ...] = tuple(entries)
        self._by_tag: dict[str, list[Attribute]] = {}
        for entry in self.entries:
            self._by_tag.setdefault(entry.tag, []).append(entry)
        self._check_unique_match_keys()

    def _check_unique_match_keys(self) -> None:
        for tag, entries in self._by_tag.items():
            if sum(entry.matchable for entry in entries) > 1:
                raise ValueError(f"attribute {tag} is matchable at more than one level")

    def by_tag(self, tag: str) -> list[Attribute]:
        """Entries for a tag or tag path (``ggggeeee[.ggggeeee]``, any hex case)."""
        return self._by_tag.get(tag.upper(), [])

    def of_level(self, level: Level) -> tuple[Attribute, ...]:
        return tuple(entry for entry in self.entries if entry.level is level)

    def stored(self, level: Level) -> tuple[Attribute, ...]:
        """Entries of a level whose values come from the instance header."""
        return tuple(entry for entry in self.of_level(level) if not entry.computed)


@cache
def standard_table() -> AttributeTable:
    """The built-in table, built once per process."""
    return AttributeTable(Attribute(*row) for row in STANDARD_ATTRIBUTES)
