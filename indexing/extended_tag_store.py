"""The ExtendedTagStore port: where extended query tag definitions are kept."""

from __future__ import annotations

from typing import Protocol

from indexing.extended_tags import ExtendedTag


class ExtendedTagExistsError(Exception):
    """A definition for the tag already exists."""


class ExtendedTagStore(Protocol):
    async def add(self, tags: list[ExtendedTag]) -> None:
        """Add all of ``tags`` or none (:class:`ExtendedTagExistsError` names a clash)."""
        ...

    async def all(self) -> list[ExtendedTag]:
        """Every definition, ordered by path."""
        ...

    async def save(self, tag: ExtendedTag) -> None:
        """Replace a definition."""
        ...

    async def remove(self, path: str) -> None:
        ...

    async def add_errors(self, path: str, errors: list[dict[str, str]]) -> None:
        """Record reindex errors of a tag (one per instance; recording one again replaces it)."""
        ...

    async def errors(self, path: str, limit: int, offset: int) -> list[dict[str, str]]:
        """A tag's recorded errors, in the order they were recorded."""
        ...

    async def close(self) -> None:
        ...
