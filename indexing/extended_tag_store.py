"""The ExtendedTagStore port: where extended query tag definitions are kept."""

from __future__ import annotations

from typing import Protocol

from indexing.extended_tags import MAX_TAGS, ExtendedTag, ExtendedTagError


class ExtendedTagExistsError(Exception):
    """A definition for the tag already exists."""


class ReindexAssignedError(Exception):
    """A definition is still assigned to a running reindex (no tag may be added meanwhile)."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id


def check_can_add(current: list[ExtendedTag], tags: list[ExtendedTag]) -> None:
    """Refuse ``tags`` when one exists, a reindex is assigned, or the limit would be passed.
    Adapters call it inside their atomic write, so the rules hold when two requests race."""
    running = next((tag.operation_id for tag in current if tag.operation_id), None)
    if running:
        raise ReindexAssignedError(running)
    clash = {tag.path for tag in current} & {tag.path for tag in tags}
    if clash:
        raise ExtendedTagExistsError(f"extended query tag {min(clash)} already exists")
    if len(current) + len(tags) > MAX_TAGS:
        raise ExtendedTagError(f"at most {MAX_TAGS} extended query tags are allowed ({len(current)} exist)")


class ExtendedTagStore(Protocol):
    async def add(self, tags: list[ExtendedTag]) -> None:
        """Add all of ``tags`` or none, atomically checked with :func:`check_can_add`
        (:class:`ExtendedTagExistsError` names a clash, :class:`ReindexAssignedError` a
        running reindex, :class:`~indexing.extended_tags.ExtendedTagError` the limit)."""
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
