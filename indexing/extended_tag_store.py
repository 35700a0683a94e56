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

    async def close(self) -> None:
        ...
