"""The human side of the server: the landing page (``/``), the API docs (``/docs``) and the
built-in OHIF viewer (``/viewer/``). Plain HTML and CSS, no build step, nothing from a CDN."""
