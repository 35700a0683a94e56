"""Load the demo set into a store, through the same use case as STOW.

Idempotent: a sample already stored is reported as such (its UIDs are fixed), and the slide,
whose series and instance UIDs the generator draws at random, is only generated when its
study is not in the index yet.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dicomcore.threads import in_thread
from dicomweb.demo.samples import SLIDE, write_radiology, write_slide
from dicomweb.usecases.store_instance import Outcome, StoreInstance, store_upload
from indexing.port import IndexStore


async def load_demo(store: StoreInstance, index: IndexStore, staging_path: Callable[[], Path]) -> list[Outcome]:
    """Store every sample; one outcome per file (stored, or already stored)."""
    with tempfile.TemporaryDirectory(prefix="dicomweb-demo-") as work:
        folder = Path(work)
        paths = await in_thread(write_radiology, folder / "radiology")
        if not await index.list_instances(SLIDE.study_uid):
            paths += await in_thread(write_slide, folder / "slide")
        outcomes = []
        for path in paths:
            staged = staging_path()
            await in_thread(shutil.copyfile, path, staged)
            outcomes.append(await store_upload(store, staged, None))  # consumes the staged copy
        return outcomes
