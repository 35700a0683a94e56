"""Bulk import (``POST /import``) and upload sessions (``POST /uploads``)."""
