"""Command line: ``dicomweb serve`` starts the embedded server; ``dicomweb ingest`` imports
the files dropped into the drop zone once; ``dicomweb verify [--repair]`` reconciles files,
index and change feed; ``dicomweb import PREFIX`` runs a bulk import
(:mod:`dicomweb.import_cli`); ``dicomweb changefeed tail`` follows the feed.

Options override the environment (see :class:`dicomweb.settings.Settings`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from dicomweb.http.urls import SERVICE_PREFIX


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # Settings are read from the environment, so workers started by uvicorn see the same.
    os.environ["DICOMWEB_DATA_DIR"] = str(Path(args.data).resolve())
    root = f"http://{args.host}:{args.port}{SERVICE_PREFIX}"
    os.environ.setdefault("DICOMWEB_PUBLIC_URL", root)
    config = uvicorn.Config(
        "dicomweb.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = uvicorn.Server(config)
    _announce_when_ready(server, root, args.data)
    if args.workers > 1:
        # Several processes share one SQLite database (WAL, one writer at a time) and one folder.
        sock = config.bind_socket()
        print(f"DICOMweb service root: {root}  (data: {Path(args.data).resolve()}, {args.workers} workers)",
              flush=True)
        Multiprocess(config, sockets=[sock]).run()
        return 0
    server.run()
    return 0


def _announce_when_ready(server: object, root: str, data: str) -> None:
    """Print the service root once uvicorn is listening (after ``startup``)."""
    original = server.startup  # type: ignore[attr-defined]

    async def startup(sockets: object = None) -> None:
        await original(sockets=sockets)
        print(f"DICOMweb service root: {root}  (data: {Path(data).resolve()})", flush=True)

    server.startup = startup  # type: ignore[attr-defined]


def _tail(args: argparse.Namespace) -> int:
    import httpx

    from dicomweb.follow import Position, follow, print_entry

    root = args.url.rstrip("/")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            follow(root, print_entry, Position(Path(args.state)), metadata=args.metadata,
                   poll_seconds=args.poll, stop_when_idle=args.once)
    except httpx.HTTPError as exc:  # server down, refused, or an error status: one line, not a traceback
        print(f"dicomweb changefeed tail: cannot read {root}/changefeed: {exc}", file=sys.stderr)
        return 1
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import asyncio
    from collections import Counter

    from dicomweb.composition import build_services
    from dicomweb.settings import Settings
    from dicomweb.usecases.blob_created import Outcome
    from dicomweb.usecases.dropzone import scan_once

    settings = Settings.from_env()
    if args.data:
        settings = settings.with_(data_dir=Path(args.data).resolve())

    async def run() -> dict[str, Outcome]:
        services = build_services(settings)
        try:
            return await scan_once(services.blob_created)
        finally:
            await services.close()

    outcomes = asyncio.run(run())
    for name, outcome in sorted(outcomes.items()):
        print(f"{outcome.value:16} {name}")
    counts = Counter(outcome.value for outcome in outcomes.values())
    print("; ".join(f"{count} {value}" for value, count in sorted(counts.items())) or "nothing to import")
    not_imported = {Outcome.DUPLICATE, Outcome.INVALID, Outcome.FAILED}
    if any(outcome in not_imported for outcome in outcomes.values()):
        print("files not imported are in failed/, each with a .failure.json note (GET /v1/operations/ingest-failures)")
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from dicomweb.composition import build_services
    from dicomweb.settings import Settings
    from dicomweb.usecases.reconcile import Report

    settings = Settings.from_env()  # the Azure settings too: this is the admin entry point there
    if args.data:
        settings = settings.with_(data_dir=Path(args.data).resolve())

    async def run() -> Report:
        services = build_services(settings)
        try:
            return await services.reconcile.run(repair=args.repair, digests=not args.no_digests)
        finally:
            await services.close()

    report = asyncio.run(run())
    print(json.dumps(report.to_dict(), indent=2))
    if report.damage and not args.repair:
        print("damage found; run again with --repair to fix what can be fixed", file=sys.stderr)
        return 1
    return 1 if report.corrupt_files or report.invalid_files else 0


def _import(args: argparse.Namespace) -> int:
    from dicomweb.import_cli import import_in_process, import_remote

    if args.data:
        return import_in_process(Path(args.data).resolve(), args.prefix, args.delete_source)
    return import_remote(args.url.rstrip("/"), args.prefix, args.delete_source)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicomweb", description="DICOMweb server (PS3.18)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server on the embedded store (folder + SQLite)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    serve.add_argument("--data", default=os.environ.get("DICOMWEB_DATA_DIR", "data"),
                       help="folder of the embedded store (default ./data)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)

    ingest = commands.add_parser(
        "ingest", help="import the files dropped into the store's incoming/ folder (DATA/blobs/incoming), then exit")
    ingest.add_argument("--data", default=None,
                        help="folder of the embedded store (default: DICOMWEB_DATA_DIR or ./data)")
    ingest.set_defaults(handler=_ingest)

    verify = commands.add_parser(
        "verify", help="compare files, index and change feed (and each file's SHA-256); --repair fixes them")
    verify.add_argument("--data", default=None,
                        help="folder of the embedded store (default: DICOMWEB_DATA_DIR or ./data); the Azure "
                             "stores are chosen by DICOMWEB_BLOB_STORE/DICOMWEB_INDEX_STORE")
    verify.add_argument("--repair", action="store_true", help="fix what was found (else only report)")
    verify.add_argument("--no-digests", action="store_true", help="skip reading every file for its SHA-256")
    verify.set_defaults(handler=_verify)

    bulk = commands.add_parser(
        "import", help="import every file under a prefix of the import area (DATA/import), with a progress bar")
    bulk.add_argument("prefix", help="files whose path in the import area starts with this, e.g. batch-7/")
    bulk.add_argument("--url", default="http://127.0.0.1:8080/v1", help="service root of a running server")
    bulk.add_argument("--data", default=None, help="run in this process over the embedded store in this folder "
                      "(instead of asking a server)")
    bulk.add_argument("--delete-source", action="store_true", help="remove each file once stored")
    bulk.set_defaults(handler=_import)

    feed = commands.add_parser("changefeed", help="read the change feed").add_subparsers(dest="feed", required=True)
    tail = feed.add_parser("tail", help="print each change as a JSON line, resuming from a saved position")
    tail.add_argument("--url", default="http://127.0.0.1:8080/v1", help="service root")
    tail.add_argument("--state", default="changefeed-position.json", help="file holding the last sequence handled")
    tail.add_argument("--metadata", action="store_true", help="include each instance's metadata")
    tail.add_argument("--poll", type=float, default=1.0, help="seconds between polls when caught up")
    tail.add_argument("--once", action="store_true", help="stop when caught up instead of polling")
    tail.set_defaults(handler=_tail)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
