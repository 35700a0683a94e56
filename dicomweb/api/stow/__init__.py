"""STOW-RS (PS3.18 §10.5): POST /studies and /studies/{study}."""
