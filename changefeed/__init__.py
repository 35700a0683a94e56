"""The ordered log of every change, its stores, and publishing events from it."""
