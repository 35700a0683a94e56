"""The scale benchmark's code path at a tiny size (the real run fills a million instances
and takes an hour; it does not run in CI): fill by bulk import, measure at two checkpoints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bench import scale


def test_scale_mode_fills_by_import_and_measures_every_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    code = scale.main(["--instances", "200", "--checkpoints", "100", "--batch", "100", "--stow-requests", "10",
                       "--metadata-series", "20", "--data", str(tmp_path / "store"), "--out", str(out)])

    assert code == 0
    result = json.loads(out.read_text())
    assert result["instances"] == 200 and result["import_files_per_s"] > 0
    points = result["checkpoints"]
    assert [point["instances"] for point in points] == [100, 200]
    for point in points:
        assert point["stow_per_s"] > 0 and point["frame_p50_ms"] > 0 and point["metadata_p50_ms"] > 0
        assert set(point["qido_p50_ms"]) == {"qido-patientid", "qido-patientname", "qido-studydate", "qido-series",
                                             "qido-studies"}
        assert 0 < point["startup_s"] < 30
        assert point["index_bytes_per_instance"] > 0
    assert set(result["verdicts"]["qido_last_over_base"]) == set(points[0]["qido_p50_ms"])
    assert not (tmp_path / "store").exists()  # removed after the run unless --keep


def test_scale_mode_refuses_a_store_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "index.sqlite").write_bytes(b"")
    with pytest.raises(SystemExit, match="not empty"):
        scale.main(["--instances", "300", "--data", str(tmp_path / "store")])


def test_a_kept_store_is_filled_further_with_resume(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "scale.json"
    common = ["--checkpoints", "", "--batch", "60", "--stow-requests", "5", "--metadata-series", "10", "--data",
              str(store), "--keep", "--out", str(out), "--import-processes", "2"]
    assert scale.main(["--instances", "100", *common]) == 0
    assert json.loads((store / scale.STATE_FILE).read_text())["filled"] == 100

    assert scale.main(["--instances", "220", "--resume", *common]) == 0

    result = json.loads(out.read_text())
    assert [point["instances"] for point in result["checkpoints"]] == [100, 220]  # the first part's kept
    assert result["instances"] == 220 and result["import_files_per_s"] > 0
    assert json.loads((store / scale.STATE_FILE).read_text())["filled"] == 220
    assert not any((store / "import").rglob("*.dcm"))  # every source deleted once stored
    with sqlite3.connect(store / "index.sqlite") as connection:
        indexed = connection.execute("SELECT count(*) FROM instance").fetchone()[0]
    assert indexed == 220 + 10 + 1 + 2 * 5  # the population, the fixtures once, 5 STOWs per checkpoint
    with pytest.raises(SystemExit, match="kept"):
        scale.main(["--instances", "300", "--resume", "--data", str(tmp_path / "other")])
