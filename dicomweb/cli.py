"""Command line: ``dicomweb serve`` starts the embedded server; ``dicomweb ingest`` imports
the files dropped into the drop zone once; ``dicomweb verify [--repair]`` reconciles files,
index and change feed; ``dicomweb import PREFIX`` runs a bulk import
(:mod:`dicomweb.import_cli`); ``dicomweb demo`` loads the sample studies;
``dicomweb changefeed tail`` follows the feed; ``dicomweb cast``
syncs a FHIR server from the feed (DICOMcast).

Options override the environment (see :class:`dicomweb.settings.Settings`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
from pathlib import Path
from typing import Any

from dicomweb import __version__
from dicomweb.http.urls import SERVICE_PREFIX

AUTH_FLAGS = {
    "auth_authority": "DICOMWEB_AUTH_AUTHORITY",
    "auth_audience": "DICOMWEB_AUTH_AUDIENCE",
    "auth_roles_claim": "DICOMWEB_AUTH_ROLES_CLAIM",
    "auth_roles_file": "DICOMWEB_AUTH_ROLES_FILE",
    "allowed_hosts": "DICOMWEB_ALLOWED_HOSTS",
    "trusted_proxies": "DICOMWEB_TRUSTED_PROXIES",
    "audit_log": "DICOMWEB_AUDIT_LOG",
    "public_url": "DICOMWEB_PUBLIC_URL",
}
"""``serve`` options that set a setting (the environment is what uvicorn's workers read)."""

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _access_decision(host: str, authority: str, allow_anonymous: bool) -> tuple[bool, str]:
    """Whether to start, and the line that says how callers are authenticated."""
    if authority:
        return True, f"authentication: bearer tokens from {authority}"
    if host in LOOPBACK or host.startswith("127."):
        return True, (f"authentication is off: anyone on this machine can read and delete everything "
                      f"(listening on {host} only; set DICOMWEB_AUTH_AUTHORITY to require tokens)")
    if allow_anonymous:
        return True, (f"WARNING: authentication is off (--allow-anonymous) on {host}: anyone who can reach "
                      "this address can read and delete every study")
    return False, (f"refusing to listen on {host} without authentication: anyone who can reach it could read "
                   "and delete every study. Either set an OpenID provider (--auth-authority URL --auth-audience "
                   "AUDIENCE, or DICOMWEB_AUTH_AUTHORITY and DICOMWEB_AUTH_AUDIENCE), or pass --allow-anonymous "
                   "if this network is trusted. See docs/security.md.")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dicomweb.accept_turns import TurnTakingSupervisor
    from dicomweb.serving import GuardedProtocol
    from dicomweb.settings import Settings

    # Settings are read from the environment, so workers started by uvicorn see the same.
    os.environ["DICOMWEB_DATA_DIR"] = str(Path(args.data).resolve())
    for name, variable in AUTH_FLAGS.items():
        if getattr(args, name) is not None:
            os.environ[variable] = getattr(args, name)
    start, access_line = _access_decision(args.host, os.environ.get("DICOMWEB_AUTH_AUTHORITY", "").strip(),
                                          args.allow_anonymous)
    if not start:
        print(access_line, file=sys.stderr)
        return 2
    os.umask(0o077)  # the data folder, the files, the SQLite database and the audit log: owner only
    scheme = "https" if args.ssl_certfile else "http"
    root = f"{scheme}://{args.host}:{args.port}{SERVICE_PREFIX}"
    # Our request log (dicomweb.http.request_log) replaces uvicorn's access log: that one
    # writes the query string, where QIDO carries patient names, and no duration.
    os.environ["DICOMWEB_REQUEST_LOG"] = "0" if args.quiet else "1"
    settings = Settings.from_env()
    config = uvicorn.Config(
        "dicomweb.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        log_config=_logging_config(),
        access_log=False,
        http=GuardedProtocol,  # header deadline, header cap, body idle timeout (dicomweb/serving.py)
        timeout_keep_alive=max(1, round(settings.keepalive_seconds)),
        limit_concurrency=settings.max_connections,
        server_header=False,  # no banner naming the server software
        proxy_headers=False,  # forwarded headers are honoured by the app, from DICOMWEB_TRUSTED_PROXIES only
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    print(access_line, flush=True)
    server = uvicorn.Server(config)
    start_page = f"http://{args.host}:{args.port}/"
    _announce_when_ready(server, root, start_page, args.data)
    if args.workers > 1:
        # Several processes share one SQLite database (WAL, one writer at a time) and one folder.
        sock = config.bind_socket()

        def announce() -> None:  # once every worker serves
            print(f"DICOMweb service root: {root}  (data: {Path(args.data).resolve()}, {args.workers} workers)",
                  flush=True)
            print(f"Start page: {start_page}  (viewer, API docs, examples)", flush=True)

        # The workers take turns accepting connections (dicomweb/accept_turns.py).
        TurnTakingSupervisor(config, sockets=[sock], on_ready=announce).run()
        return 0
    server.run()
    return 0


def _logging_config() -> dict[str, Any]:
    """uvicorn's logging set-up plus the request log on stdout (each worker process applies it)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["requests"] = {"format": "%(asctime)s %(message)s"}
    config["handlers"]["requests"] = {"formatter": "requests", "class": "logging.StreamHandler",
                                      "stream": "ext://sys.stdout"}
    config["loggers"]["dicomweb.requests"] = {"handlers": ["requests"], "level": "INFO", "propagate": False}
    # One line per process at shutdown: how long its index writers waited for each other
    # (indexing/sqlite/writer_waits.py), what decides whether --workers N scales.
    config["loggers"]["dicomweb.writers"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _announce_when_ready(server: object, root: str, start_page: str, data: str) -> None:
    """Print the service root and the start page once uvicorn is listening (after ``startup``)."""
    original = server.startup  # type: ignore[attr-defined]

    async def startup(sockets: object = None) -> None:
        await original(sockets=sockets)
        print(f"DICOMweb service root: {root}  (data: {Path(data).resolve()})", flush=True)
        print(f"Start page: {start_page}  (viewer, API docs, examples)", flush=True)

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


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from dicomweb.composition import build_services
    from dicomweb.demo.load import load_demo
    from dicomweb.settings import Settings
    from dicomweb.usecases.store_instance import FailureReason

    settings = Settings.from_env()
    if args.data:
        settings = settings.with_(data_dir=Path(args.data).resolve())

    async def run() -> int:
        services = build_services(settings)
        try:
            outcomes = await load_demo(services.store, services.index, services.blobs.new_staging_path)
        finally:
            await services.close()
        stored = sum(outcome.stored for outcome in outcomes)
        already = sum(outcome.failure == FailureReason.ALREADY_STORED for outcome in outcomes)
        failed = [outcome.message for outcome in outcomes
                  if not outcome.stored and outcome.failure != FailureReason.ALREADY_STORED]
        print(f"demo: {stored} instances stored, {already} already there")
        for message in failed:
            print(f"demo: not stored: {message}", file=sys.stderr)
        print("demo: patient DEMO^FIRST HOUR; open the start page of the server to look at them")
        return 1 if failed else 0

    return asyncio.run(run())


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
def _cast(args: argparse.Namespace) -> int:
    from dicomweb.cast_command import run_cast

    return run_cast(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicomweb", description="DICOMweb server (PS3.18)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server on the embedded store (folder + SQLite)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    serve.add_argument("--data", default=os.environ.get("DICOMWEB_DATA_DIR", "data"),
                       help="folder of the embedded store (default ./data)")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the store (default 1): they take turns accepting "
                            "connections and queue their index writes on a lock file; every worker runs "
                            "the background work too, so run DICOMcast beside it (docs/performance.md)")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--quiet", action="store_true",
                       help="no request log (by default: one line per request, path without its query)")
    serve.add_argument("--access-log", action="store_true", help=argparse.SUPPRESS)  # the default now
    serve.add_argument("--allow-anonymous", action="store_true",
                       help="serve without authentication on a non-loopback address (trusted networks only)")
    serve.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", default=None, help="the certificate's private key (PEM)")
    serve.add_argument("--auth-authority", default=None, help="OpenID provider (issuer URL): DICOMWEB_AUTH_AUTHORITY")
    serve.add_argument("--auth-audience", default=None, help="accepted audiences, comma-separated")
    serve.add_argument("--auth-roles-claim", default=None, help="the token claim with the roles (default roles)")
    serve.add_argument("--auth-roles-file", default=None, help="JSON file of role -> permissions maps")
    serve.add_argument("--allowed-hosts", default=None, help="accepted Host names, comma-separated")
    serve.add_argument("--trusted-proxies", default=None,
                       help="addresses/networks whose X-Forwarded-* headers are honoured, comma-separated")
    serve.add_argument("--audit-log", default=None, help="audit log file (default DATA/audit.log)")
    serve.add_argument("--public-url", default=None, help="the service root as clients see it (returned URLs)")
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="load sample studies (a CT, an MR, a multi-frame, a whole-slide image) into the store, then exit")
    demo.add_argument("--data", default=None,
                      help="folder of the embedded store (default: DICOMWEB_DATA_DIR or ./data)")
    demo.set_defaults(handler=_demo)

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

    cast = commands.add_parser(
        "cast", help="DICOMcast: keep a FHIR R4 server's Patient, Endpoint and ImagingStudy in step with the "
        "change feed of a running server; `cast failures` lists (--retry: retries) the studies it skipped")
    cast.add_argument("what", nargs="?", choices=["run", "failures"], default="run")
    cast.add_argument("--fhir-url", default=os.environ.get("DICOMWEB_FHIR_URL", ""), help="FHIR R4 base URL")
    cast.add_argument("--url", default="http://127.0.0.1:8080/v1", help="service root of the DICOMweb server")
    cast.add_argument("--state", default="dicomcast-state.json", help="file holding the position and the failures")
    cast.add_argument("--patient-system", default=os.environ.get("DICOMWEB_FHIR_PATIENT_SYSTEM", ""),
                      help="identifier system of PatientID in FHIR (default: IssuerOfPatientID, else none)")
    cast.add_argument("--auth", default=os.environ.get("DICOMWEB_FHIR_AUTH", "none"), choices=["none", "azure"],
                      help="azure: sign in to FHIR with DefaultAzureCredential (scope {fhir-url}/.default)")
    cast.add_argument("--poll", type=float, default=1.0, help="seconds between polls when caught up")
    cast.add_argument("--once", action="store_true", help="stop when caught up instead of polling")
    cast.add_argument("--batch", type=int, default=1000, help="change-feed entries read (and saved) at a time")
    cast.add_argument("--dose-observations", action="store_true",
                      default=os.environ.get("DICOMWEB_FHIR_DOSE_OBSERVATIONS", "").lower() in ("1", "true", "yes"),
                      help="radiation dose SR instances become FHIR Observations (LOINC 73569-6)")
    cast.add_argument("--retry", action="store_true", help="with `failures`: sync the failed studies again")
    cast.set_defaults(handler=_cast)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
