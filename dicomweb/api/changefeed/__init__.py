"""The change feed over HTTP (GET /changefeed, /changefeed/latest)."""
