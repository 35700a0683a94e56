"""The body of the Azure Functions timer that runs DICOMcast (registered in function_app.py).

Each tick runs one catch-up of the change feed with the same sync the embedded server runs,
its position and failures in the blob store (``state/dicomcast.json``). A tick that finds
the FHIR server unavailable logs it and leaves the position where it was: the next tick
retries. The schedule is an NCRONTAB expression (every 30 seconds).
"""

from __future__ import annotations

import logging

from dicomweb.api.context import Services
from dicomweb.usecases.cast.sync import CastUnavailable, FhirServerUnsuitable

SCHEDULE = "*/30 * * * * *"

log = logging.getLogger(__name__)


async def cast_tick(services: Services) -> int:
    """One catch-up; the number of change-feed entries handled (0 when DICOMcast is off)."""
    if services.cast is None:
        return 0
    try:
        result = await services.cast.sync.catch_up()
    except (CastUnavailable, FhirServerUnsuitable) as error:
        log.warning("DICOMcast: %s; the next tick retries", error)
        return 0
    return result.entries
