"""``dicomweb.asgi:app``: the app built from environment settings (what uvicorn imports)."""

from dicomweb.app import create_app

app = create_app()
