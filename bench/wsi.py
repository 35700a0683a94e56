"""Whole-slide-imaging benchmark: ``python -m bench.wsi [--quick]`` (also ``python -m bench --wsi``).

Against our server and Orthanc (when installed), in the same run, inside the harness's private
network namespace, interleaved, median of repeats:

1. STOW of a large JPEG base level made by ``dicomweb.demo.wsi_generate`` (MB/s);
2. random tile GETs from it: 1 client p50/p99, tiles/s with 8 clients;
3. the 25-frame batch request wsidicom makes (``frames/a,a+1,...,a+24``): p50 and frames/s;
4. STOW of a multi-GB native instance (MB/s and the server's peak RSS during the upload).

See the "Whole-slide imaging" section of bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from bench import plan
from bench.noise import NoiseMeter, groups_cpu_seconds
from bench.procs import ClientProcess, Namespace
from bench.report import SERVER_KEYS, Journal, Results, machine_info, table
from bench.servers import HOST, ServerUnavailable, Target, start_orthanc, start_ours
from bench.wsi_data import SlideFile, describe, fragment_hashes, same_length_uid, set_sop_uid, write_native_slide

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "wsi-latest.json"
NS_PORTS = {"ours": 18180, "orthanc": 18142}
CLIENTS = 8
BATCH = 25
TILE_ACCEPT = plan.FRAME_ACCEPTS[0]  # multipart octet-stream, transfer-syntax=*: stored bytes
VERIFY_TILES = 4
NOISY_CORES = 0.3
RSS_SAMPLE_S = 0.05
ORTHANC_MEMORY_FACTOR = 4  # measured: Orthanc's RSS grows ~3x the instance during its STOW
ORTHANC_REST_ROOT = ""  # Orthanc's own REST API (lookup, delete) is at the server root


@dataclass(frozen=True)
class WsiProfile:
    name: str
    repeats: int  # tile and batch workloads
    stow_repeats: int  # slide and multi-GB STOWs (each a fresh SOP Instance UID, deleted after)
    side: int  # level-0 width = height of the JPEG slide, pixels
    big_bytes: int  # pixel bytes of the native multi-GB instance (at least)
    tile_sequential: int  # request cap of the 1-client tile run
    tile_concurrent: int  # request cap of the 8-client tile run
    batch_requests: int  # request cap of the 25-frame batch run
    time_cap_s: float  # a timed GET run starts no request after this long
    stow_timeout_s: float  # per STOW request (Orthanc on the multi-GB instance is capped by this)


QUICK = WsiProfile("quick", 2, 2, 8192, 300_000_000, 300, 3_000, 60, 1.5, 90.0)
FULL = WsiProfile("full", 5, 3, 32768, 2 * 2**30, 1_000, 8_000, 200, 12.0, 600.0)


@dataclass
class Options:
    quick: bool
    only: str | None
    out: Path
    workers: int
    keep: bool
    command: str
    repeats: int | None = None
    big_gb: float | None = None
    side: int | None = None
    data_dir: Path | None = None
    wait_quiet: float = 0.0


class WsiClientProcess(ClientProcess):
    """``bench.wsi_client`` (``bench.client`` plus file STOW and part checks), same protocol."""

    module = "bench.wsi_client"


# --- memory of a server ------------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssWatch:
    """Peak memory of a server's processes over a section: the kernel's high-water mark (VmHWM,
    reset at the start through /proc/PID/clear_refs) and a sampled peak of their summed VmRSS."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.sampled_peak_kb = 0
        self.reset_ok = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssWatch:
        self.pids = group_pids(self.pgid)
        self.before_kb = sum(status_kb(p, "VmRSS") for p in self.pids)
        for pid in self.pids:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            except OSError:
                self.reset_ok = False
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            total = sum(status_kb(p, "VmRSS") for p in group_pids(self.pgid))
            self.sampled_peak_kb = max(self.sampled_peak_kb, total)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.hwm_kb = max((status_kb(p, "VmHWM") for p in group_pids(self.pgid)), default=0)
        self.after_kb = sum(status_kb(p, "VmRSS") for p in group_pids(self.pgid))

    def as_json(self) -> dict[str, Any]:
        return {
            "rss_before_mb": self.before_kb / 1024,
            "peak_rss_mb": self.hwm_kb / 1024 if self.reset_ok else None,
            "sampled_peak_rss_mb": self.sampled_peak_kb / 1024,
            "rss_after_mb": self.after_kb / 1024,
            "hwm_reset": self.reset_ok,
        }

    @property
    def peak_mb(self) -> float:
        # VmHWM is exact; the sampled sum is a fallback (and covers several worker processes).
        return max(self.hwm_kb if self.reset_ok else 0, self.sampled_peak_kb) / 1024


# --- the run ------------------------------------------------------------------------------------


@dataclass
class WsiRun(Journal):
    options: Options
    profile: WsiProfile
    client: WsiClientProcess | None = None
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    results: Results = field(default_factory=Results)
    data: dict[str, Any] = field(default_factory=dict)
    stow_forms: dict[str, list[str]] = field(default_factory=dict)
    loads: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    noise: NoiseMeter = field(default_factory=NoiseMeter)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    machine: dict[str, Any] = field(default_factory=machine_info)
    load_average_at_end: tuple[float, ...] | None = None
    foreign_average: float | None = None
    foreign_at_start: float | None = None
    ours_failed: bool = False
    aborted: bool = False
    uid_rng: random.Random = field(default_factory=lambda: random.Random(os.getpid()))


    def fail(self, target: Target, message: str) -> None:
        if target.key == "ours":
            self.ours_failed = True
        self.note(f"{target.label}: {message}")


def make_data(run: WsiRun, workdir: Path) -> tuple[SlideFile, SlideFile, SlideFile]:
    """(JPEG slide, multi-GB native instance, tiny probe instance), generated before any server
    runs. With ``--data-dir`` they are reused from (and kept in) that folder."""
    from dicomweb.demo.wsi_generate import generate_pyramid

    profile = run.profile
    folder = run.options.data_dir or workdir / "data"
    folder.mkdir(parents=True, exist_ok=True)
    slide_dir = folder / f"jpeg-{profile.side}"
    slide_path = slide_dir / "level-0.dcm"
    started = time.perf_counter()
    if not slide_path.exists():
        run.log(f"generating a {profile.side}x{profile.side} JPEG level (dicomweb.demo.wsi_generate) ...")
        generate_pyramid(slide_dir, width=profile.side, height=profile.side, tile=256, levels=1, codec="jpeg")
    slide = describe(slide_path)
    run.data["slide"] = {**_slide_json(slide), "generate_s": round(time.perf_counter() - started, 1)}
    run.log(f"JPEG level: {slide.frames} tiles, {slide.size / 1e6:.0f} MB")
    big_path = folder / f"native-{profile.big_bytes}.dcm"
    started = time.perf_counter()
    if big_path.exists():
        big = describe(big_path)
    else:
        run.log(f"writing a native instance of >= {profile.big_bytes / 1e9:.2f} GB ...")
        big = write_native_slide(big_path, profile.big_bytes)
    run.data["big"] = {**_slide_json(big), "write_s": round(time.perf_counter() - started, 1)}
    run.log(f"native instance: {big.frames} frames, {big.size / 1e9:.2f} GB")
    probe = write_native_slide(workdir / "probe.dcm", 16 * 16 * 3, tile=16)
    return slide, big, probe


def _slide_json(slide: SlideFile) -> dict[str, Any]:
    out = asdict(slide)
    out["path"] = str(slide.path)
    return out


def start_targets(run: WsiRun, stack: contextlib.ExitStack, prefix: list[str] | None, workdir: Path) -> None:
    wanted = [run.options.only] if run.options.only else list(SERVER_KEYS)
    for key in wanted:
        try:
            if key == "ours":
                data = workdir / "ours-data"
                data.mkdir()
                port = NS_PORTS["ours"] if prefix is not None else _free_port()
                target = start_ours(prefix or [], run.client, port, data, workdir / "ours.log", run.options.workers)
            elif prefix is None:
                raise ServerUnavailable("no network namespace here (needs root and iproute2); Orthanc binds 0.0.0.0")
            else:
                target = start_orthanc(prefix, run.client, NS_PORTS["orthanc"], workdir / "orthanc",
                                       workdir / "orthanc.log")
        except ServerUnavailable as exc:
            run.skipped[key] = str(exc)
            run.ours_failed |= key == "ours"
            print(f"NOTE: skipping {key}: {exc}", flush=True)
            continue
        stack.callback(target.process.stop)
        run.noise.watch(target.process.proc.pid)
        run.targets.append(target)
        run.log(f"{target.label} ready at {target.url} (pid {target.process.proc.pid})")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- STOW ---------------------------------------------------------------------------------------


def memory_too_low(slide: SlideFile) -> str:
    """Orthanc holds a STOW body in memory several times over (RSS +6.2 GB for 2.17 GB);
    do not let it push a shared machine into swapping or the OOM killer."""
    available = status_kb_meminfo("MemAvailable") * 1024
    needed = ORTHANC_MEMORY_FACTOR * slide.size
    if available and available < needed:
        return (f"{available / 2**30:.1f} GiB of memory available, under {ORTHANC_MEMORY_FACTOR}x the "
                f"instance ({needed / 2**30:.1f} GiB)")
    return ""


def status_kb_meminfo(name: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stow_file(run: WsiRun, target: Target, slide: SlideFile, form: str, timeout: float) -> dict[str, Any]:
    return run.call(
        op="stow_file", host=HOST, port=target.port, path=target.stow_path, file=str(slide.path), form=form,
        timeout=timeout,
    )


def probe_stow_forms(run: WsiRun, probe: SlideFile) -> None:
    """Which STOW bodies each server takes: single-part application/dicom, multipart (1 part)."""
    for target in run.targets:
        forms = []
        for form in ("single", "multipart"):
            uid = same_length_uid(probe.sop_uid, run.uid_rng)
            set_sop_uid(probe, _current_uid(probe), uid)
            answer = stow_file(run, target, probe, form, 60)
            target.info.setdefault("stow_probe", {})[form] = {
                k: answer.get(k) for k in ("status", "ok_stored", "content_type", "body", "error")
            }
            if answer.get("ok_stored"):
                forms.append(form)
            else:
                body = " ".join((answer.get("body") or answer.get("error") or "").split())[:160]
                what = "single-part application/dicom" if form == "single" else "one-part multipart/related"
                run.note(f"{target.label} does not take a {what} STOW: HTTP {answer.get('status')} {body}")
        run.stow_forms[target.key] = forms
        if not forms:
            run.fail(target, "accepted no STOW form")


def _current_uid(slide: SlideFile) -> str:
    return describe(slide.path).sop_uid


def lookup_orthanc_id(run: WsiRun, target: Target, sop_uid: str) -> str | None:
    answer = run.call(op="http", host=HOST, port=target.port, method="POST",
                      path=f"{ORTHANC_REST_ROOT}/tools/lookup", body=sop_uid)
    try:
        for item in json.loads(answer.get("body") or "[]"):
            if item.get("Type") == "Instance":
                return item["ID"]
    except (ValueError, TypeError, KeyError):
        pass
    return None


def delete_instance(run: WsiRun, target: Target, slide: SlideFile, sop_uid: str) -> None:
    """Remove a STOW-workload copy so repeats of the multi-GB upload do not fill the disk."""
    if target.key == "orthanc":
        orthanc_id = lookup_orthanc_id(run, target, sop_uid)
        if orthanc_id is None:
            return
        path = f"{ORTHANC_REST_ROOT}/instances/{orthanc_id}"
    else:
        path = slide.instance_path(target.root, sop_uid)
    answer = run.call(op="http", host=HOST, port=target.port, method="DELETE", path=path)
    if not 200 <= answer.get("status", 0) < 300:
        run.note(f"{target.label}: DELETE {path} answered {answer.get('status')}: {answer.get('body', '')[:200]}")


def load_slide(run: WsiRun, slide: SlideFile) -> None:
    """The JPEG level, stored once in every server for the tile workloads."""
    for target in list(run.targets):
        forms = run.stow_forms.get(target.key) or []
        if not forms:
            continue
        answer = stow_file(run, target, slide, forms[0], run.profile.stow_timeout_s)
        run.loads.append({"server": target.key, "form": forms[0], **answer})
        if not answer.get("ok_stored"):
            run.fail(target, f"storing the JPEG level failed: HTTP {answer.get('status')} "
                             f"{answer.get('error') or answer.get('body', '')[:300]}")
            continue
        run.log(f"{target.label}: stored the JPEG level ({forms[0]}) at {answer['mb_per_s']:.0f} MB/s")


def stow_rows(label: str, size: int, form: str) -> tuple[str, str]:
    what = "single-part application/dicom" if form == "single" else "multipart/related, 1 part"
    row = f"STOW {label} ({_mb(size)}), {what}"
    return row, f"{row}: server peak RSS"


def fresh_get_row(big: SlideFile) -> str:
    return f"GET frames 1,{big.frames} of the {_mb(big.size)} instance just stored (1 request)"


def order_stow_rows(run: WsiRun, slide: SlideFile, big: SlideFile) -> None:
    """Create the STOW rows up front so the table lists them grouped, whatever ran first."""
    forms = ("single", "multipart")
    for form in forms:
        run.results.row(stow_rows(slide_label(slide), slide.size, form)[0], "MB/s", "higher")
    for form in forms:
        rate_row, rss_row = stow_rows(big_label(big), big.size, form)
        run.results.row(rate_row, "MB/s", "higher")
        run.results.row(rss_row, "MB", "lower")
    run.results.row(fresh_get_row(big), "ms", "lower")


def slide_label(slide: SlideFile) -> str:
    return f"JPEG level, {slide.frames:,} tiles"


def big_label(big: SlideFile) -> str:
    return f"native level, {big.frames:,} frames"


def _mb(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:,.0f} MB"


def timed_stow(run: WsiRun, target: Target, slide: SlideFile, label: str, repeat: int, big: bool) -> None:
    """Every STOW form the server takes, once, each with a fresh SOP Instance UID, deleted after.
    For the multi-GB instance the server's peak RSS is a table row, and the first repeat checks
    that the first and last frames come back as stored."""
    timeout = run.profile.stow_timeout_s
    for form in run.stow_forms.get(target.key, []):
        if not target.process.alive():
            return
        if big and target.key == "orthanc" and (reason := memory_too_low(slide)):
            run.note(f"Orthanc: multi-GB STOW skipped: {reason}")
            run.stow_forms[target.key] = []
            return
        rate_row, rss_row = stow_rows(label, slide.size, form)
        uid = same_length_uid(slide.sop_uid, run.uid_rng)
        set_sop_uid(slide, _current_uid(slide), uid)
        before = run.noise.start()
        cpu0 = groups_cpu_seconds({target.process.proc.pid})
        with RssWatch(target.process.proc.pid) as watch:
            answer = stow_file(run, target, slide, form, timeout)
        server_cpu = groups_cpu_seconds({target.process.proc.pid}) - cpu0
        foreign = run.noise.foreign_cores(before)
        record = {
            "workload": f"stow-{label}-{form}", "server": target.key, "repeat": repeat + 1, "foreign_cores": foreign,
            "server_cpu_s": server_cpu, **watch.as_json(), **{k: v for k, v in answer.items() if k != "body"},
        }
        run.runs.append(record)
        if answer.get("ok_stored"):
            run.results.add(rate_row, "MB/s", "higher", target.key, answer["mb_per_s"])
            if big:
                run.results.add(rss_row, "MB", "lower", target.key, watch.peak_mb)
            run.log(f"  r{repeat + 1} {target.label:7} STOW {label} {form}: {answer['mb_per_s']:.0f} MB/s, "
                    f"peak RSS {watch.peak_mb:.0f} MB (before {watch.before_kb / 1024:.0f}), "
                    f"server CPU {server_cpu:.1f} s, foreign {foreign:.2f} cores")
            if big and repeat == 0 and check_tiles(run, target, slide, [1, slide.frames], uid, f"{label} after STOW"):
                run.results.add(fresh_get_row(slide), "ms", "lower", target.key, run.checks[-1]["wall_s"] * 1000)
        else:
            problem = answer.get("error") or f"HTTP {answer.get('status')}: {answer.get('body', '')[:300]}"
            run.results.error(rate_row, "MB/s", "higher", target.key, problem)
            if big:
                run.results.error(rss_row, "MB", "lower", target.key, problem)
            record["peak_rss_at_failure_mb"] = watch.peak_mb
            run.fail(target, f"STOW {label} ({form}) failed after {answer.get('wall_s') or timeout:.0f} s: "
                             f"{problem}; peak RSS {watch.peak_mb:.0f} MB")
            if target.key == "orthanc" and answer.get("status") == 0:
                # Capped: do not spend the cap again on every repeat.
                run.stow_forms[target.key] = [f for f in run.stow_forms[target.key] if f != form]
        if target.process.alive():
            delete_instance(run, target, slide, uid)
        else:
            run.fail(target, f"exited during STOW {label}:\n{target.process.tail()}")


# --- tiles --------------------------------------------------------------------------------------


def check_tiles(run: WsiRun, target: Target, slide: SlideFile, frames: list[int], sop_uid: str, what: str) -> bool:
    """GET ``frames`` in one request and compare each part with the stored bytes of the file."""
    expected = fragment_hashes(slide.path, frames)
    path = f"{slide.instance_path(target.root, sop_uid)}/frames/{','.join(map(str, frames))}"
    answer = run.call(op="parts", host=HOST, port=target.port, path=path,
                      headers={"Accept": target.accept.get("tiles", TILE_ACCEPT)}, timeout=run.profile.stow_timeout_s)
    parts = answer.get("parts") or []
    good = len(parts) == len(frames) and all(
        expected[n][1] in (part[1], part[2]) for n, part in zip(frames, parts, strict=False)
    )
    run.checks.append({"server": target.key, "what": what, "frames": frames, "status": answer.get("status"),
                       "content_type": answer.get("content_type"), "parts": len(parts), "match": good,
                       "wall_s": answer.get("wall_s")})
    if not good:
        run.fail(target, f"{what}: frames {frames[:5]}... not the stored bytes (HTTP {answer.get('status')}, "
                         f"{len(parts)} parts, {answer.get('body', '')[:200]})")
    return good


def tile_paths(target: Target, slide: SlideFile, repeat: int, count: int) -> list[str]:
    rng = random.Random(f"tiles-{repeat}")
    base = slide.instance_path(target.root)
    return [f"{base}/frames/{rng.randrange(1, slide.frames + 1)}" for _ in range(count)]


def batch_paths(target: Target, slide: SlideFile, repeat: int, count: int) -> list[str]:
    rng = random.Random(f"batch-{repeat}")
    base = slide.instance_path(target.root)
    out = []
    for _ in range(count):
        first = rng.randrange(1, slide.frames - BATCH + 2)
        out.append(f"{base}/frames/{','.join(str(n) for n in range(first, first + BATCH))}")
    return out


def prepare_tiles(run: WsiRun, slide: SlideFile) -> None:
    """Every server must answer the stored-bytes Accept form with the right bytes, for single
    tiles and for a 25-frame batch, before it is timed."""
    rng = random.Random("verify")
    for target in run.targets:
        target.accept["tiles"] = TILE_ACCEPT
        singles = [rng.randrange(1, slide.frames + 1) for _ in range(VERIFY_TILES)]
        ok = all(check_tiles(run, target, slide, [n], slide.sop_uid, "tile") for n in singles)
        first = rng.randrange(1, slide.frames - BATCH + 2)
        ok &= check_tiles(run, target, slide, list(range(first, first + BATCH)), slide.sop_uid, "25-frame batch")
        target.info["tiles_verified"] = ok


@dataclass(frozen=True)
class TileWorkload:
    key: str
    rows: tuple[tuple[str, str, str, str], ...]  # (row, unit, better, answer field)
    paths: Any
    requests: int
    clients: int
    frames_per_request: int = 1


def tile_workloads(run: WsiRun, slide: SlideFile) -> list[TileWorkload]:
    p = run.profile
    size = slide.size / slide.frames / 1e3
    tiles = f"Tile GET (~{size:.0f} KB JPEG, random of {slide.frames:,})"
    batch = f"{BATCH}-frame batch GET (frames/a,...,a+{BATCH - 1})"
    return [
        TileWorkload("tiles-seq", ((f"{tiles}, 1 client p50", "ms", "lower", "p50_ms"),
                                   (f"{tiles}, 1 client p99", "ms", "lower", "p99_ms")),
                     tile_paths, p.tile_sequential, 1),
        TileWorkload("tiles-conc", ((f"{tiles}, {CLIENTS} clients", "tiles/s", "higher", "frames_per_s"),),
                     tile_paths, p.tile_concurrent, CLIENTS),
        TileWorkload("batch-seq", ((f"{batch}, 1 client p50", "ms", "lower", "p50_ms"),
                                   (f"{batch}, 1 client", "frames/s", "higher", "frames_per_s")),
                     batch_paths, p.batch_requests, 1, BATCH),
    ]


def run_tiles(run: WsiRun, workload: TileWorkload, target: Target, slide: SlideFile, repeat: int) -> None:
    if not target.process.alive() or not target.info.get("slide_stored"):
        return
    command = {
        "op": "get", "host": HOST, "port": target.port,
        "paths": workload.paths(target, slide, repeat, workload.requests),
        "headers": {"Accept": target.accept["tiles"]},
        "requests": workload.requests, "concurrency": workload.clients, "max_seconds": run.profile.time_cap_s,
    }
    before = run.noise.start()
    answer = run.call(**command)
    foreign = run.noise.foreign_cores(before)
    if answer.get("wall_s"):
        answer["frames_per_s"] = answer.get("succeeded", 0) * workload.frames_per_request / answer["wall_s"]
    run.runs.append({"workload": workload.key, "server": target.key, "repeat": repeat + 1,
                     "foreign_cores": foreign, **answer})
    good = answer.get("ok") and answer.get("succeeded")
    for row, unit, better, key in workload.rows:
        if good:
            run.results.add(row, unit, better, target.key, answer[key])
        if not good or answer.get("errors"):
            run.results.error(row, unit, better, target.key,
                              f"{answer.get('succeeded')}/{answer.get('requests')} ok: "
                              f"{answer.get('first_error') or answer.get('error')}"[:400])
    if not good or answer.get("errors"):
        run.ours_failed |= target.key == "ours"
    shown = ", ".join(f"{unit}={answer.get(key, 0):.2f}" for _, unit, _, key in workload.rows) if good else "failed"
    run.log(f"  r{repeat + 1} {target.label:7} {workload.key}: {shown} "
            f"({answer.get('requests')} req, client CPU {answer.get('client_cpu_fraction', 0):.0%}, "
            f"foreign {foreign:.2f} cores)")


# --- orchestration ------------------------------------------------------------------------------


def execute(run: WsiRun, workdir: Path) -> None:
    with contextlib.ExitStack() as stack:
        run.log(f"work dir {workdir}")
        slide, big, probe = make_data(run, workdir)
        run.foreign_at_start = wait_for_quiet(run)
        prefix = None
        if reason := Namespace.unavailable_reason():
            run.note(f"no network namespace ({reason}): our server only, on the host loopback")
        else:
            try:
                prefix = stack.enter_context(Namespace.create()).prefix()
            except RuntimeError as exc:
                run.note(f"could not create a network namespace: {exc}")
        run.client = WsiClientProcess(prefix or [], workdir / "client.log")
        stack.callback(run.client.stop)
        run.noise.watch(run.client.proc.pid)
        start_targets(run, stack, prefix, workdir)
        if not run.targets:
            return
        probe_stow_forms(run, probe)
        load_slide(run, slide)
        for target in run.targets:
            target.info["slide_stored"] = any(
                r["server"] == target.key and r.get("ok_stored") for r in run.loads
            )
        prepare_tiles(run, slide)
        workloads = tile_workloads(run, slide)
        for repeat in range(run.profile.repeats):
            order = run.targets if repeat % 2 == 0 else run.targets[::-1]
            for workload in workloads:
                for target in order:
                    run_tiles(run, workload, target, slide, repeat)
        order_stow_rows(run, slide, big)
        for repeat in range(run.profile.stow_repeats):
            order = run.targets if repeat % 2 == 0 else run.targets[::-1]
            for target in order:
                timed_stow(run, target, slide, slide_label(slide), repeat, big=False)
            for target in order:
                timed_stow(run, target, big, big_label(big), repeat, big=True)
        for target in run.targets:
            target.info["log_tail"] = target.process.tail(5)


def wait_for_quiet(run: WsiRun) -> float:
    """Foreign CPU over a second before anything is started; with ``--wait-quiet S``, wait up to
    S seconds for a second in which other processes use less than NOISY_CORES."""
    deadline = time.monotonic() + run.options.wait_quiet
    while True:
        before = run.noise.start()
        time.sleep(1.0)
        cores = run.noise.foreign_cores(before)
        if cores <= NOISY_CORES or time.monotonic() >= deadline:
            break
    if cores > NOISY_CORES:
        run.note(f"the machine is busy before the benchmark starts: other processes use {cores:.1f} cores")
    return cores


def noise_summary(run: WsiRun) -> None:
    timed = [r for r in run.runs if (r.get("wall_s") or 0) >= 0.5]
    if not timed:
        return
    run.foreign_average = sum(r["foreign_cores"] * r["wall_s"] for r in timed) / sum(r["wall_s"] for r in timed)
    noisy = [r for r in timed if r["foreign_cores"] > NOISY_CORES]
    if noisy:
        run.note(f"other processes used > {NOISY_CORES} cores during {len(noisy)} of {len(timed)} timed runs "
                 f"(average {run.foreign_average:.2f}, up to {max(r['foreign_cores'] for r in noisy):.1f} of "
                 f"{os.cpu_count()} cores): those numbers are disturbed")


def to_json(run: WsiRun) -> dict[str, Any]:
    return {
        "schema": 1,
        "benchmark": "wsi",
        "command": run.options.command,
        "profile": asdict(run.profile),
        "options": {"only": run.options.only, "workers": run.options.workers or None},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
        "duration_s": round(time.time() - run.started, 1),
        "machine": run.machine,
        "load_average_at_end": run.load_average_at_end,
        "foreign_cores_at_start": run.foreign_at_start,
        "foreign_cores_average": run.foreign_average,
        "data": run.data,
        "servers": {
            t.key: {"label": t.label, "url": t.url, "info": t.info, "accept": t.accept,
                    "stow_forms": run.stow_forms.get(t.key)}
            for t in run.targets
        },
        "skipped": run.skipped,
        "loads": run.loads,
        "checks": run.checks,
        "rows": [row.as_json() for row in run.results.rows.values()],
        "notes": run.notes,
        "runs": run.runs,
        "measurement": {
            "statistic": "median over repeats of each per-repeat value",
            "latency": "per-request wall time at the client, keep-alive connection, nearest-rank p50/p99",
            "stow": "one request on a new connection, body streamed from disk with sendfile; "
                    "MB/s = file bytes / (first byte sent .. last response byte)",
            "peak_rss": "max VmHWM of the server's processes, reset (clear_refs 5) just before the STOW; "
                        "or the sampled peak of their summed VmRSS when larger",
        },
    }


def print_summary(run: WsiRun) -> None:
    keys = [t.key for t in run.targets]
    p = run.profile
    print()
    print(f"Whole-slide imaging benchmark ({p.name}; tiles: median of {p.repeats} repeats, "
          f"STOW: median of {p.stow_repeats})")
    for key, reason in run.skipped.items():
        print(f"skipped {key}: {reason.splitlines()[0] if reason else ''}")
    if keys:
        print(table(run.results, keys))
    load_start = run.machine.get("load_average_at_start")
    print(f"machine: {run.machine.get('nproc')} cores, load average at start "
          f"{_loads(load_start)}, at end {_loads(run.load_average_at_end)}; other processes' CPU: "
          f"{_cores(run.foreign_at_start)} cores before the start, {_cores(run.foreign_average)} on average "
          "during timed runs")
    print("(!) = some requests failed, ERR = all failed; '-' = not run (see notes)")
    for note in run.notes:
        print(f"note: {note}")


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _loads(values: Any) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def main(options: Options) -> int:
    profile = QUICK if options.quick else FULL
    if options.repeats:
        profile = replace(profile, repeats=options.repeats)
    if options.big_gb:
        profile = replace(profile, big_bytes=int(options.big_gb * 1e9))
    if options.side:
        profile = replace(profile, side=options.side)
    run = WsiRun(options, profile)
    workdir = Path(tempfile.mkdtemp(prefix="dwbench-wsi-"))
    try:
        try:
            execute(run, workdir)
        except KeyboardInterrupt:
            run.note("interrupted: partial results")
            run.aborted = True
        except Exception as exc:  # what did run is still worth reporting
            traceback.print_exc()
            run.note(f"benchmark aborted: {type(exc).__name__}: {exc}")
            run.aborted = True
        run.load_average_at_end = os.getloadavg()
        for name in [n for n, row in run.results.rows.items() if not row.values and not row.errors]:
            del run.results.rows[name]
        noise_summary(run)
        print_summary(run)
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(to_json(run), indent=2, default=str) + "\n")
        print(f"\nJSON written to {options.out} ({time.time() - run.started:.0f}s)", flush=True)
    finally:
        if options.keep:
            print(f"server logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not run.targets:
        return 1
    if run.aborted:
        return 2
    return 2 if run.ours_failed and options.only in (None, "ours") else 0


def parse_args(argv: list[str], prog: str = "python -m bench.wsi") -> Options:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8192² slide, 300 MB instance, 2 repeats (< 2 min)")
    parser.add_argument("--only", choices=["ours", "orthanc"], help="benchmark one server only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--workers", type=int, default=0, help="pass --workers N to our server")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument("--repeats", type=int, help="repeats of the tile workloads")
    parser.add_argument("--big-gb", type=float,
                        help="size of the native STOW instance in GB (default 2 GiB; quick 0.3)")
    parser.add_argument("--side", type=int, help="width = height of the JPEG slide (default 32768; quick 8192)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for other processes to use < 0.3 cores before starting")
    parser.add_argument("--data-dir", type=Path,
                        help="generate the slide and the big instance here, or reuse them if present")
    args = parser.parse_args(argv)
    command = shlex.join([*prog.split(), *argv])
    return Options(args.quick, args.only, args.out, args.workers, args.keep, command, args.repeats, args.big_gb,
                   args.side, args.data_dir, args.wait_quiet)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind so every process and the namespace are stopped


def cli(argv: list[str], prog: str = "python -m bench.wsi") -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    return main(parse_args(argv, prog))


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

