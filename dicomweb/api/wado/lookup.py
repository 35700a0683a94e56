"""Finding the instances a WADO URL names, or a 400/404 that says which UID is wrong."""

from __future__ import annotations

from starlette.requests import Request

from dicomcore.uids import is_valid_uid
from dicomweb.api.context import Services
from dicomweb.http.errors import bad_request, not_found
from indexing.port import InstanceRecord


def path_uids(request: Request) -> tuple[str, str | None, str | None]:
    """Study, series and instance UIDs from the URL, each checked (PS3.5 9.1)."""
    params = request.path_params
    uids = (params["study"], params.get("series"), params.get("instance"))
    for name, value in zip(("study", "series", "instance"), uids, strict=True):
        if value is not None and not is_valid_uid(value):
            raise bad_request(f"{name} UID {value!r} in the URL is not a valid UID")
    return uids


async def find_instances(services: Services, request: Request, *, attributes: bool = True) -> list[InstanceRecord]:
    """The records the URL names (``attributes=False``: without their headers, see
    :meth:`IndexStore.list_instances`); 404 when there are none."""
    study, series, sop = path_uids(request)
    records = await services.index.list_instances(study, series, sop, attributes=attributes)
    if not records:
        target = f"instance {sop}" if sop else f"series {series}" if series else f"study {study}"
        raise not_found(f"{target} not found")
    return records


async def find_instance(services: Services, request: Request) -> InstanceRecord:
    study, series, sop = path_uids(request)
    assert series is not None and sop is not None
    record = await services.index.get_instance(study, series, sop)
    if record is None:
        raise not_found(f"instance {sop} not found in series {series} of study {study}")
    return record
