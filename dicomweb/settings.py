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


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


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
    ``DICOMWEB_CORS_ORIGINS``               comma-separated allowed origins (``*`` for any)
    ``DICOMWEB_BLOB_CONNECTION_STRING``     Azure Storage connection string (Azurite: see README)
    ``DICOMWEB_BLOB_ACCOUNT_URL``           or the account URL, signed in with DefaultAzureCredential
    ``DICOMWEB_BLOB_CONTAINER``             the container of instance files (``dicomweb``)
    ``DICOMWEB_COSMOS_ENDPOINT``            Cosmos DB account endpoint (index and change feed)
    ``DICOMWEB_COSMOS_KEY``                 its key; empty: DefaultAzureCredential
    ``DICOMWEB_COSMOS_DATABASE``            the database (``dicomweb``); containers are created
    ``DICOMWEB_PUBLIC_URL``                 the service root as clients see it (in events)
    ``DICOMWEB_EVENTGRID_ENDPOINT``         Event Grid topic endpoint; empty: in-process events
    ``DICOMWEB_EVENTGRID_KEY``              its access key
    ``DICOMWEB_INGEST_SCAN_SECONDS``        how often the server imports files dropped into
                                            ``incoming/`` (2; 0: never, e.g. with Event Grid)
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
    public_url: str = "http://127.0.0.1:8080/v1"
    eventgrid_endpoint: str = ""
    eventgrid_key: str = ""
    ingest_scan_seconds: float = 2.0
    transcode_max_bytes: int = 256 * MIB
    delete_lease_seconds: float = 10.0
    staging_grace_seconds: float = 3600.0
    verify_at_startup: bool = True
    import_dir: str = ""
    import_container: str = "import"
    operations_runner: str = "local"
    operations_queue: str = "dicomweb-operations"
    upload_expiry_seconds: int = 3600

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
            public_url=_env("DICOMWEB_PUBLIC_URL", "http://127.0.0.1:8080/v1"),
            eventgrid_endpoint=_env("DICOMWEB_EVENTGRID_ENDPOINT", ""),
            eventgrid_key=_env("DICOMWEB_EVENTGRID_KEY", ""),
            ingest_scan_seconds=float(_env("DICOMWEB_INGEST_SCAN_SECONDS", "2")),
            transcode_max_bytes=int(_env("DICOMWEB_TRANSCODE_MAX_BYTES", str(256 * MIB))),
            delete_lease_seconds=float(_env("DICOMWEB_DELETE_LEASE_SECONDS", "10")),
            staging_grace_seconds=float(_env("DICOMWEB_STAGING_GRACE_SECONDS", "3600")),
            verify_at_startup=_env("DICOMWEB_VERIFY_AT_STARTUP", "1") not in ("0", "false", "no"),
            import_dir=_env("DICOMWEB_IMPORT_DIR", ""),
            import_container=_env("DICOMWEB_IMPORT_CONTAINER", "import"),
            operations_runner=_env("DICOMWEB_OPERATIONS_RUNNER", "local"),
            operations_queue=_env("DICOMWEB_OPERATIONS_QUEUE", "dicomweb-operations"),
            upload_expiry_seconds=int(_env("DICOMWEB_UPLOAD_EXPIRY_SECONDS", "3600")),
        )

    @property
    def import_path(self) -> Path:
        """The embedded import area."""
        return Path(self.import_dir) if self.import_dir else self.data_dir / "import"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)
