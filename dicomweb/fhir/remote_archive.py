"""A running DICOMweb server as the sync's archive: its change feed (``GET /changefeed``,
read in pages without metadata) and each study's metadata (``GET /studies/{uid}/metadata``)."""

from __future__ import annotations

import httpx

from dicomweb.usecases.cast.ports import ArchiveUnavailable, FeedEntry, Json


class RemoteArchive:
    def __init__(self, service_root: str, *, timeout: float = 60.0) -> None:
        self._root = service_root.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout)

    @property
    def service_root(self) -> str:
        return self._root

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> httpx.Response:
        try:
            response = await self.http.get(f"{self._root}{path}", params=params,
                                           headers={"Accept": "application/dicom+json, application/json"})
        except httpx.HTTPError as error:
            raise ArchiveUnavailable(f"{type(error).__name__} reaching {self._root}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise ArchiveUnavailable(f"{self._root} answered {response.status_code}")
        return response

    async def read(self, after: int, limit: int) -> list[FeedEntry]:
        response = await self._get("/changefeed", {"offset": after, "limit": min(limit, 1000),
                                                   "includeMetadata": "false"})
        if response.status_code != 200:
            raise ArchiveUnavailable(f"{self._root}/changefeed answered {response.status_code}: is the URL the "
                                     "service root of a DICOMweb server with a change feed?")
        return [FeedEntry(int(item["sequence"]), item["studyInstanceUid"], item["action"]) for item in response.json()]

    async def study_metadata(self, study_uid: str) -> list[Json]:
        response = await self._get(f"/studies/{study_uid}/metadata")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        documents: list[Json] = response.json()
        return documents

    async def close(self) -> None:
        await self.http.aclose()
