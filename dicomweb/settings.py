"""The one settings object. Every value comes from an environment variable.

The names are the ones the Azure Functions app reads from ``local.settings.json``
(``Values``), so the embedded server and the cloud app are configured the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

GIB = 1024**3
MIB = 1024**2

DEFAULT_VIEWER_DIR = Path(__file__).resolve().parents[1] / "viewer" / "ohif"
"""Where ``scripts/setup.sh`` (``scripts/fetch_viewer.sh``) installs the OHIF viewer in a clone."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Server configuration.

    ======================================  =====================================================
    environment variable                    meaning
    ======================================  =====================================================
    ``DICOMWEB_DATA_DIR``                   folder of the embedded store (files and SQLite)
    ``DICOMWEB_BLOB_STORE``                 ``filesystem`` (default) or ``azure``
    ``DICOMWEB_INDEX_STORE``                ``sqlite`` (default) or ``cosmos``
    ``DICOMWEB_MAX_REQUEST_BYTES``          STOW request body limit; larger gets 413 (64 GiB)
    ``DICOMWEB_BULKDATA_THRESHOLD``         binary values longer than this become BulkDataURIs
    ``DICOMWEB_CORS_ORIGINS``               comma-separated allowed origins (``*``: any, auth on only)
    ``DICOMWEB_BLOB_CONNECTION_STRING``     Azure Storage connection string (Azurite: see README)
    ``DICOMWEB_BLOB_ACCOUNT_URL``           or the account URL, signed in with DefaultAzureCredential
    ``DICOMWEB_BLOB_CONTAINER``             the container of instance files (``dicomweb``)
    ``DICOMWEB_COSMOS_ENDPOINT``            Cosmos DB account endpoint (index and change feed)
    ``DICOMWEB_COSMOS_KEY``                 its key; empty: DefaultAzureCredential
    ``DICOMWEB_COSMOS_DATABASE``            the database (``dicomweb``); containers are created
    ``DICOMWEB_PUBLIC_URL``                 the service root as clients see it (returned URLs,
                                            events); empty: from the request
    ``DICOMWEB_EVENTGRID_ENDPOINT``         Event Grid topic endpoint; empty: in-process events
    ``DICOMWEB_EVENTGRID_KEY``              its access key; empty: DefaultAzureCredential
    ``DICOMWEB_INGEST_SCAN_SECONDS``        how often the server imports files dropped into
                                            ``incoming/`` (2; 0: never, e.g. with Event Grid)
    ``DICOMWEB_BLOB_EVENTS_QUEUE``          Azure: the storage queue Event Grid delivers the
                                            container's BlobCreated events to (``blob-events``)
    ``APPLICATIONINSIGHTS_CONNECTION_STRING``  traces and metrics to Application Insights
    ``DICOMWEB_TELEMETRY``                  local telemetry: ``otlp`` (the ``OTEL_EXPORTER_OTLP_*``
                                            variables), ``console``, or empty: off
    ``DICOMWEB_TRANSCODE_MAX_BYTES``        the largest instance (stored file, or its pixels
                                            decoded) WADO converts in memory (256 MiB); larger
                                            conversions answer 406
    ``DICOMWEB_DELETE_LEASE_SECONDS``       how long a deleter's claim on an unfinished delete
                                            holds off others (10)
    ``DICOMWEB_STAGING_GRACE_SECONDS``      age past which ``verify`` removes staging leftovers
                                            (3600)
    ``DICOMWEB_VERIFY_AT_STARTUP``          reconcile files, index and feed in the background
                                            at start-up (1; 0: only ``dicomweb verify``)
    ``DICOMWEB_IMPORT_DIR``                 the embedded import area (default ``DATA/import``)
    ``DICOMWEB_IMPORT_CONTAINER``           the Azure import area: a container (``import``)
    ``DICOMWEB_OPERATIONS_RUNNER``          ``local`` (in the server process) or ``durable``
    ``DICOMWEB_OPERATIONS_QUEUE``           the queue that starts Durable orchestrations
    ``DICOMWEB_UPLOAD_EXPIRY_SECONDS``      how long an upload URL is valid (3600)
    ``DICOMWEB_FHIR_URL``                   FHIR R4 base URL: DICOMcast syncs to it (off when empty)
    ``DICOMWEB_FHIR_PATIENT_SYSTEM``        identifier system of PatientID in FHIR (docs/dicomcast.md)
    ``DICOMWEB_FHIR_AUTH``                  ``none`` (default) or ``azure`` (managed identity token)
    ``DICOMWEB_CAST_POLL_SECONDS``          how often DICOMcast looks for changes it missed (5)
    ``DICOMWEB_FHIR_DOSE_OBSERVATIONS``     ``true``: dose SR instances become Observations (false)
    ``DICOMWEB_MAX_PARTS``                  parts in one STOW request (5,000)
    ``DICOMWEB_MAX_FRAMES``                 frame numbers in one frames URL, duplicates count (1,000)
    ``DICOMWEB_MAX_INFLATED_BYTES``         a Deflated instance's inflated size (256 MiB)
    ``DICOMWEB_MAX_HEADER_BYTES``           a DICOM header's size before Pixel Data (64 MiB)
    ``DICOMWEB_QIDO_MAX_VALUES``            alternatives (values, patterns, UIDs) per QIDO key (200)
    ``DICOMWEB_QIDO_TIMEOUT_SECONDS``       a QIDO search's time budget; past it 503 (30)
    ``DICOMWEB_MAX_CONNECTIONS``            concurrent connections of ``dicomweb serve`` (1,000)
    ``DICOMWEB_HEADER_TIMEOUT_SECONDS``     time to send a request's headers (30)
    ``DICOMWEB_BODY_TIMEOUT_SECONDS``       longest pause while sending a request body (60)
    ``DICOMWEB_KEEPALIVE_SECONDS``          idle time before a kept-alive connection closes (30)
    ``DICOMWEB_VIEWER_DIR``                 the OHIF viewer bundle served at ``/viewer/``
    ``DICOMWEB_REQUEST_LOG``                ``1``: one log line per request (the CLI's default)
    ``DICOMWEB_AUTH_AUTHORITY``             OpenID provider (issuer URL); empty: no authentication
    ``DICOMWEB_AUTH_AUDIENCE``              accepted token audiences, comma-separated
    ``DICOMWEB_AUTH_ROLES_CLAIM``           the claim holding the caller's roles (``roles``)
    ``DICOMWEB_AUTH_ROLES_FILE``            JSON file of extra role → permissions maps
    ``DICOMWEB_AUTH_DISABLED``              ``true``: the Functions app serves without authority
    ``DICOMWEB_ALLOWED_HOSTS``              accepted Host names, comma-separated (default:
                                            loopback names and the public URL's host)
    ``DICOMWEB_TRUSTED_PROXIES``            addresses/networks whose X-Forwarded-* are honoured
    ``DICOMWEB_AUDIT_LOG``                  audit log file (embedded default DATA/audit.log)
    ======================================  =====================================================
    """

    data_dir: Path = Path("data")
    blob_store: str = "filesystem"
    index_store: str = "sqlite"
    max_request_bytes: int = 64 * GIB
    bulkdata_threshold: int = 1024
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    blob_connection_string: str = ""
    blob_account_url: str = ""
    blob_container: str = "dicomweb"
    cosmos_endpoint: str = ""
    cosmos_key: str = ""
    cosmos_database: str = "dicomweb"
    public_url: str = ""
    eventgrid_endpoint: str = ""
    eventgrid_key: str = ""
    ingest_scan_seconds: float = 2.0
    blob_events_queue: str = "blob-events"
    appinsights_connection_string: str = ""
    telemetry: str = ""
    transcode_max_bytes: int = 256 * MIB
    delete_lease_seconds: float = 10.0
    staging_grace_seconds: float = 3600.0
    verify_at_startup: bool = True
    import_dir: str = ""
    import_container: str = "import"
    operations_runner: str = "local"
    operations_queue: str = "dicomweb-operations"
    upload_expiry_seconds: int = 3600
    fhir_url: str = ""
    fhir_patient_system: str = ""
    fhir_auth: str = "none"
    cast_poll_seconds: float = 5.0
    fhir_dose_observations: bool = False
    max_parts: int = 5_000
    max_frames: int = 1_000
    max_inflated_bytes: int = 256 * 1024**2
    max_header_bytes: int = 64 * 1024**2
    qido_max_values: int = 200
    qido_timeout_seconds: float = 30.0
    max_connections: int = 1_000
    header_timeout_seconds: float = 30.0
    body_timeout_seconds: float = 60.0
    keepalive_seconds: float = 30.0
    viewer_dir: Path = DEFAULT_VIEWER_DIR
    request_log: bool = False
    auth_authority: str = ""
    auth_audiences: tuple[str, ...] = field(default_factory=tuple)
    auth_roles_claim: str = "roles"
    auth_roles_file: str = ""
    auth_disabled: bool = False
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    audit_log: str = ""
    frame_cache_ttl_seconds: float = 10.0
    """How long a frame GET trusts a cached frame index without asking the index whether the
    instance is still indexed (docs/architecture.md, "One frame, from request to bytes")."""
    reindex_settle_seconds: float = 0.0
    """How long a reindex waits before its first page: Cosmos DB below Strong consistency
    (the deployment sets 5; docs/extended-query-tags.md, "the race on Cosmos")."""
    stow_memory_part_bytes: int = 1024**2
    """A STOW part up to this size is received in memory and written to disk once, when it
    is stored; a larger one is spooled to a staging file as it arrives (docs/stow-receive.md)."""
    stow_memory_total_bytes: int = 64 * 1024**2
    """The most STOW part bytes the process holds in memory at once, over every request;
    past it, parts are spooled (docs/stow-receive.md)."""

    @classmethod
    def from_env(cls) -> Settings:
        origins = _env("DICOMWEB_CORS_ORIGINS", "")
        return cls(
            data_dir=Path(_env("DICOMWEB_DATA_DIR", "data")),
            blob_store=_env("DICOMWEB_BLOB_STORE", "filesystem"),
            index_store=_env("DICOMWEB_INDEX_STORE", "sqlite"),
            max_request_bytes=int(_env("DICOMWEB_MAX_REQUEST_BYTES", str(64 * GIB))),
            bulkdata_threshold=int(_env("DICOMWEB_BULKDATA_THRESHOLD", "1024")),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            blob_connection_string=_env("DICOMWEB_BLOB_CONNECTION_STRING", ""),
            blob_account_url=_env("DICOMWEB_BLOB_ACCOUNT_URL", ""),
            blob_container=_env("DICOMWEB_BLOB_CONTAINER", "dicomweb"),
            cosmos_endpoint=_env("DICOMWEB_COSMOS_ENDPOINT", ""),
            cosmos_key=_env("DICOMWEB_COSMOS_KEY", ""),
            cosmos_database=_env("DICOMWEB_COSMOS_DATABASE", "dicomweb"),
            public_url=_env("DICOMWEB_PUBLIC_URL", ""),
            eventgrid_endpoint=_env("DICOMWEB_EVENTGRID_ENDPOINT", ""),
            eventgrid_key=_env("DICOMWEB_EVENTGRID_KEY", ""),
            ingest_scan_seconds=float(_env("DICOMWEB_INGEST_SCAN_SECONDS", "2")),
            blob_events_queue=_env("DICOMWEB_BLOB_EVENTS_QUEUE", "blob-events"),
            appinsights_connection_string=_env("APPLICATIONINSIGHTS_CONNECTION_STRING", ""),
            telemetry=_env("DICOMWEB_TELEMETRY", "").lower(),
            transcode_max_bytes=int(_env("DICOMWEB_TRANSCODE_MAX_BYTES", str(256 * MIB))),
            delete_lease_seconds=float(_env("DICOMWEB_DELETE_LEASE_SECONDS", "10")),
            staging_grace_seconds=float(_env("DICOMWEB_STAGING_GRACE_SECONDS", "3600")),
            verify_at_startup=_env("DICOMWEB_VERIFY_AT_STARTUP", "1") not in ("0", "false", "no"),
            import_dir=_env("DICOMWEB_IMPORT_DIR", ""),
            import_container=_env("DICOMWEB_IMPORT_CONTAINER", "import"),
            operations_runner=_env("DICOMWEB_OPERATIONS_RUNNER", "local"),
            operations_queue=_env("DICOMWEB_OPERATIONS_QUEUE", "dicomweb-operations"),
            upload_expiry_seconds=int(_env("DICOMWEB_UPLOAD_EXPIRY_SECONDS", "3600")),
            fhir_url=_env("DICOMWEB_FHIR_URL", ""),
            fhir_patient_system=_env("DICOMWEB_FHIR_PATIENT_SYSTEM", ""),
            fhir_auth=_env("DICOMWEB_FHIR_AUTH", "none"),
            cast_poll_seconds=float(_env("DICOMWEB_CAST_POLL_SECONDS", "5")),
            fhir_dose_observations=_env("DICOMWEB_FHIR_DOSE_OBSERVATIONS", "false").lower() in ("1", "true", "yes"),
            max_parts=int(_env("DICOMWEB_MAX_PARTS", "5000")),
            max_frames=int(_env("DICOMWEB_MAX_FRAMES", "1000")),
            max_inflated_bytes=int(_env("DICOMWEB_MAX_INFLATED_BYTES", str(256 * 1024**2))),
            max_header_bytes=int(_env("DICOMWEB_MAX_HEADER_BYTES", str(64 * 1024**2))),
            qido_max_values=int(_env("DICOMWEB_QIDO_MAX_VALUES", "200")),
            qido_timeout_seconds=float(_env("DICOMWEB_QIDO_TIMEOUT_SECONDS", "30")),
            max_connections=int(_env("DICOMWEB_MAX_CONNECTIONS", "1000")),
            header_timeout_seconds=float(_env("DICOMWEB_HEADER_TIMEOUT_SECONDS", "30")),
            body_timeout_seconds=float(_env("DICOMWEB_BODY_TIMEOUT_SECONDS", "60")),
            keepalive_seconds=float(_env("DICOMWEB_KEEPALIVE_SECONDS", "30")),
            viewer_dir=Path(_env("DICOMWEB_VIEWER_DIR", str(DEFAULT_VIEWER_DIR))),
            request_log=_env("DICOMWEB_REQUEST_LOG", "0").lower() in ("1", "true", "yes"),
            auth_authority=_env("DICOMWEB_AUTH_AUTHORITY", ""),
            auth_audiences=_list("DICOMWEB_AUTH_AUDIENCE"),
            auth_roles_claim=_env("DICOMWEB_AUTH_ROLES_CLAIM", "roles"),
            auth_roles_file=_env("DICOMWEB_AUTH_ROLES_FILE", ""),
            auth_disabled=_env("DICOMWEB_AUTH_DISABLED", "false").lower() in ("1", "true", "yes"),
            allowed_hosts=_list("DICOMWEB_ALLOWED_HOSTS"),
            trusted_proxies=_list("DICOMWEB_TRUSTED_PROXIES"),
            audit_log=_env("DICOMWEB_AUDIT_LOG", ""),
            frame_cache_ttl_seconds=float(_env("DICOMWEB_FRAME_CACHE_TTL_SECONDS", "10")),
            reindex_settle_seconds=float(_env("DICOMWEB_REINDEX_SETTLE_SECONDS", "0")),
            stow_memory_part_bytes=int(_env("DICOMWEB_STOW_MEMORY_PART_BYTES", str(1024**2))),
            stow_memory_total_bytes=int(_env("DICOMWEB_STOW_MEMORY_TOTAL_BYTES", str(64 * 1024**2))),
        )

    @property
    def import_path(self) -> Path:
        """The embedded import area."""
        return Path(self.import_dir) if self.import_dir else self.data_dir / "import"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)
