"""The ports the sync takes: a FHIR client, a change feed, a study reader, a state store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

Json = dict[str, Any]


class FhirError(Exception):
    """A FHIR request failed. ``transient``: worth retrying (network, 408, 412, 429, 5xx)."""

    def __init__(self, reason: str, *, status: int | None = None, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.transient = transient


class FhirClient(Protocol):
    async def capabilities(self) -> Json:
        """The server's CapabilityStatement (``GET /metadata``)."""
        ...

    async def search(self, resource_type: str, params: dict[str, str]) -> list[Json]:
        """The resources matching ``params`` (first page; callers search by identifier)."""
        ...

    async def transaction(self, bundle: Json) -> Json:
        """POST a transaction Bundle; the response Bundle, or :class:`FhirError`."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class FeedEntry:
    """What the sync needs of a change-feed entry: which study it touches."""

    sequence: int
    study_uid: str
    action: str


class FeedSource(Protocol):
    async def read(self, after: int, limit: int) -> list[FeedEntry]:
        """Entries with sequence > ``after``, ascending, at most ``limit``."""
        ...

    async def close(self) -> None:
        """Release what the source owns (connections); not the stores it was given."""
        ...


class StudySource(Protocol):
    @property
    def service_root(self) -> str:
        """The DICOMweb service root clients use (the Endpoint's address)."""
        ...

    async def study_metadata(self, study_uid: str) -> list[Json]:
        """The DICOM JSON of every instance the study holds now; empty when it holds none."""
        ...


@dataclass
class Failure:
    """A study whose sync failed for a reason retrying would not cure."""

    study_uid: str
    sequence: int
    """The last feed entry of the study handled when it failed."""
    reason: str
    failed_at: str

    def to_json(self) -> Json:
        data = asdict(self)
        return {"studyInstanceUid": data["study_uid"], "sequence": data["sequence"], "reason": data["reason"],
                "failedAt": data["failed_at"]}

    @classmethod
    def from_json(cls, data: Json) -> Failure:
        return cls(study_uid=data["studyInstanceUid"], sequence=int(data["sequence"]), reason=data["reason"],
                   failed_at=data["failedAt"])


@dataclass
class CastProgress:
    """The sync's durable state: the last feed sequence handled and the recorded failures."""

    sequence: int = 0
    failures: list[Failure] | None = None

    def to_json(self) -> Json:
        return {"sequence": self.sequence, "failures": [failure.to_json() for failure in self.failures or []]}

    @classmethod
    def from_json(cls, data: Json) -> CastProgress:
        return cls(int(data.get("sequence", 0)), [Failure.from_json(item) for item in data.get("failures", [])])


class CastStateStore(Protocol):
    async def load(self) -> CastProgress:
        """The saved state, or a fresh one (sequence 0, no failures)."""
        ...

    async def save(self, progress: CastProgress) -> None:
        """Replace the state durably (a crash never leaves half of it)."""
        ...


class ArchiveUnavailable(Exception):
    """The archive (its feed or a study's metadata) could not be read now: worth retrying."""
