"""``dicomweb.asgi:app``: the app built from environment settings (what uvicorn imports)."""

import gc

from dicomweb.app import create_app

app = create_app()

# What importing the app made (modules, classes, pydicom's dictionaries: ~500,000 objects)
# lives as long as the process. Left to the collector, every full collection walks all of it:
# 20-50 ms pauses in the middle of requests (docs/performance.md). Frozen, a collection
# walks only what requests made since.
gc.freeze()
