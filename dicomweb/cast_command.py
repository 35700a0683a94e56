"""``dicomweb cast``: DICOMcast following a running server's change feed, and its failures.

Exit status: 0 when stopped or caught up (``--once``); 2 when the FHIR server cannot be
synced (its ``/metadata`` says what is missing); 1 when recorded failures remain
(``failures``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path

from dicomweb.composition import build_remote_cast
from dicomweb.usecases.cast.state import JsonFileState
from dicomweb.usecases.cast.sync import CastSync, CastUnavailable, FhirServerUnsuitable

log = logging.getLogger("dicomweb.cast")


def _sync(args: argparse.Namespace) -> CastSync:
    if not args.fhir_url:
        raise SystemExit("dicomweb cast: --fhir-url (or DICOMWEB_FHIR_URL) is required")
    return build_remote_cast(args.fhir_url, args.url.rstrip("/"), Path(args.state),
                             patient_system=args.patient_system, auth=args.auth, batch=args.batch,
                             dose_observations=args.dose_observations)


async def _follow(args: argparse.Namespace) -> int:
    sync = _sync(args)
    try:
        while True:
            try:
                result = await sync.catch_up()
                if result.entries:
                    print(f"synced {result.entries} changes of {result.studies} studies, {result.failed} failed; "
                          f"position {result.position}", flush=True)
                if args.once:
                    return 0
            except CastUnavailable as error:
                print(f"FHIR server or archive unavailable ({error}); retrying in {args.poll} s", file=sys.stderr,
                      flush=True)
                if args.once:
                    return 1
            await asyncio.sleep(args.poll)
    except FhirServerUnsuitable as error:
        print(str(error), file=sys.stderr)
        return 2
    finally:
        await sync.close()


async def _failures(args: argparse.Namespace) -> int:
    if args.retry:
        sync = _sync(args)
        try:
            await sync.check_server()
            remaining = await sync.retry_failures()
        finally:
            await sync.close()
    else:
        remaining = (await JsonFileState(Path(args.state)).load()).failures or []
    for failure in remaining:
        print(json.dumps(failure.to_json()))
    print(f"{len(remaining)} failed studies", file=sys.stderr)
    return 1 if remaining else 0


def run_cast(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_failures(args) if args.what == "failures" else _follow(args))
    return 0
