"""Azure Functions blueprints that ``function_app.py`` registers (triggers other than HTTP)."""
