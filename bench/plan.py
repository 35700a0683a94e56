"""What a run does: data-set sizes per profile, the fixtures, and the workloads.

A workload turns (target, repeat) into one command for the load client and names the
metrics read from its answer. The orchestrator only computes URLs from the seeds in
``bench.datagen``; the client generates the same instances from the same specs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import datagen
from bench.servers import HOST, Target

FRAME_ACCEPTS = [
    'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    'multipart/related; type="application/octet-stream"',
    'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
]
RETRIEVE_ACCEPTS = [
    'multipart/related; type="application/dicom"; transfer-syntax=*',
    'multipart/related; type="application/dicom"',
]
METADATA_ACCEPTS = ["application/dicom+json", "application/json"]
QIDO_ACCEPT = "application/dicom+json"


@dataclass(frozen=True)
class Profile:
    name: str
    repeats: int
    stow_single: int  # instances sent one per request, per STOW-1 run
    stow_batches: int  # 20-instance requests per STOW-20 run
    metadata_series: int  # instances in the metadata series
    retrieve_study: int  # instances in the retrieve study; 0 = reuse the metadata study
    frames: int  # frames in each multi-frame instance
    frame_size: int
    frame_sequential: int  # requests (cap) for the sequential frame run
    frame_concurrent: int  # requests (cap) for the 8-client frame run
    qido_levels: tuple[int, ...]  # QIDO population sizes, loaded in steps
    qido_queries: int  # sequential requests per QIDO query kind
    metadata_requests: int
    retrieve_requests: int
    echo_requests: int
    time_cap_s: float  # a timed run stops starting requests after this long


QUICK = Profile(
    name="quick",
    repeats=2,
    stow_single=16,
    stow_batches=2,
    metadata_series=100,
    retrieve_study=0,
    frames=256,
    frame_size=256,
    frame_sequential=50,
    frame_concurrent=400,
    qido_levels=(2_000,),
    qido_queries=15,
    metadata_requests=3,
    retrieve_requests=2,
    echo_requests=3_000,
    time_cap_s=1.5,
)

FULL = Profile(
    name="full",
    repeats=5,
    stow_single=100,
    stow_batches=10,
    metadata_series=1_000,
    retrieve_study=100,
    frames=256,
    frame_size=256,
    frame_sequential=300,
    frame_concurrent=3_000,
    qido_levels=(10_000, 100_000),
    qido_queries=60,
    metadata_requests=5,
    retrieve_requests=3,
    echo_requests=20_000,
    time_cap_s=12.0,
)

FIXTURE_SEED = "fixture"
QIDO_SEED = "qido"
METADATA_STUDY, RETRIEVE_STUDY = 1, 2
STOW_BATCH = 20
STOW_CLIENTS = 4
FRAME_CLIENTS = 8
RETRIEVE_CLIENTS = 4


def series_spec(spec: datagen.SeriesSpec) -> dict[str, Any]:
    return {
        "type": "series",
        "seed": spec.seed,
        "study_index": spec.study_index,
        "series_number": spec.series_number,
        "count": spec.count,
        "size": spec.size,
        "first": spec.first,
    }


def metadata_series(profile: Profile) -> datagen.SeriesSpec:
    return datagen.SeriesSpec(FIXTURE_SEED, METADATA_STUDY, 1, profile.metadata_series)


def retrieve_series(profile: Profile) -> datagen.SeriesSpec:
    if not profile.retrieve_study:
        return metadata_series(profile)
    return datagen.SeriesSpec(FIXTURE_SEED, RETRIEVE_STUDY, 1, profile.retrieve_study)


def multiframe(profile: Profile, kind: str) -> datagen.MultiFrameSpec:
    return datagen.MultiFrameSpec(FIXTURE_SEED, kind, profile.frames, profile.frame_size)


def fixture_loads(profile: Profile) -> list[tuple[str, dict[str, Any], int]]:
    """(label, data set, instances per request) to STOW into every server before timing."""
    loads = [("metadata series", series_spec(metadata_series(profile)), STOW_BATCH)]
    if profile.retrieve_study:
        loads.append(("retrieve study", series_spec(retrieve_series(profile)), STOW_BATCH))
    for kind in ("native", "jpeg"):
        spec = multiframe(profile, kind)
        data = {
            "type": "multiframe",
            "seed": spec.seed,
            "kind": kind,
            "frames": spec.frames,
            "size": spec.size,
        }
        loads.append((f"multi-frame {kind}", data, 1))
    return loads


def population_load(level_from: int, level_to: int) -> dict[str, Any]:
    return {"type": "population", "seed": QIDO_SEED, "start": level_from, "stop": level_to}


@dataclass(frozen=True)
class Metric:
    """One table row read from a client answer."""

    row: str
    unit: str
    better: str  # "higher" or "lower"
    read: Callable[[dict[str, Any]], float]


@dataclass(frozen=True)
class Workload:
    key: str
    metrics: tuple[Metric, ...]
    command: Callable[[Target, int], dict[str, Any]]


def p50(row: str) -> Metric:
    return Metric(f"{row} p50", "ms", "lower", lambda a: a["p50_ms"])


def p99(row: str) -> Metric:
    return Metric(f"{row} p99", "ms", "lower", lambda a: a["p99_ms"])


def _get(target: Target, paths: list[str], accept: str, requests: int, cap: float, clients: int = 1) -> dict:
    return {
        "op": "get",
        "host": HOST,
        "port": target.port,
        "paths": paths,
        "headers": {"Accept": accept},
        "requests": requests,
        "concurrency": clients,
        "max_seconds": cap,
    }


def frame_paths(target: Target, spec: datagen.MultiFrameSpec) -> list[str]:
    base = (
        f"{target.root}/studies/{spec.study.study_uid}/series/{spec.series_uid}/instances/{spec.instance_uid}"
    )
    # Walk frames in a stride so consecutive requests do not read neighbouring bytes.
    order = [(i * 37) % spec.frames + 1 for i in range(spec.frames)]
    return [f"{base}/frames/{n}" for n in order]


def read_workloads(profile: Profile) -> list[Workload]:
    cap = profile.time_cap_s
    out: list[Workload] = []
    for kind in ("native", "jpeg"):
        spec = multiframe(profile, kind)
        label = f"Frame GET {kind} ({'64 KB raw' if kind == 'native' else '~47 KB JPEG'})"
        accept_key = f"frames-{kind}"
        out.append(
            Workload(
                f"frames-{kind}-seq",
                (p50(f"{label}, 1 client"), p99(f"{label}, 1 client")),
                lambda t, r, s=spec, k=accept_key: _get(
                    t, frame_paths(t, s), t.accept[k], profile.frame_sequential, cap
                ),
            )
        )
        out.append(
            Workload(
                f"frames-{kind}-conc",
                (Metric(f"{label}, {FRAME_CLIENTS} clients", "req/s", "higher", lambda a: a["req_per_s"]),),
                lambda t, r, s=spec, k=accept_key: _get(
                    t, frame_paths(t, s), t.accept[k], profile.frame_concurrent, cap, FRAME_CLIENTS
                ),
            )
        )
    meta = metadata_series(profile)
    meta_path = f"/studies/{meta.study.study_uid}/series/{meta.series_uid}/metadata"
    out.append(
        Workload(
            "metadata",
            (Metric(f"Series metadata, {meta.count} instances", "ms", "lower", lambda a: a["p50_ms"]),),
            lambda t, r: _get(t, [t.root + meta_path], t.accept["metadata"], profile.metadata_requests, 120),
        )
    )
    out += retrieve_workloads(profile)
    return out


def retrieve_workloads(profile: Profile) -> list[Workload]:
    """The study retrieve by one client, and by :data:`RETRIEVE_CLIENTS` at once (aggregate
    MB/s: one client alone is bounded by the client's own receiving, see ``bench.echo``)."""
    study = retrieve_series(profile)
    mb = round(study.count * 0.525)
    row = f"Study retrieve multipart ({study.count} inst, {mb} MB)"

    def command(target: Target, clients: int) -> dict[str, Any]:
        path = f"{target.root}/studies/{study.study.study_uid}"
        return _get(target, [path], target.accept["retrieve"], profile.retrieve_requests * clients, 120, clients)

    return [
        Workload("retrieve", (Metric(row, "MB/s", "higher", _mb_per_s),), lambda t, r: command(t, 1)),
        Workload(
            f"retrieve-{RETRIEVE_CLIENTS}",
            (Metric(f"{row}, {RETRIEVE_CLIENTS} clients", "MB/s", "higher", _mb_per_s),),
            lambda t, r: command(t, RETRIEVE_CLIENTS),
        ),
    ]


def _mb_per_s(answer: dict[str, Any]) -> float:
    return answer["bytes_in"] / answer["wall_s"] / 1e6 if answer["wall_s"] else 0.0


def _stow(target: Target, dataset: dict[str, Any], per_request: int, clients: int) -> dict[str, Any]:
    return {
        "op": "stow",
        "host": HOST,
        "port": target.port,
        "path": target.stow_path,
        "dataset": dataset,
        "per_request": per_request,
        "concurrency": clients,
    }


def stow_dataset(key: str, repeat: int, count: int) -> dict[str, Any]:
    """A fresh series for every STOW run so no request overwrites an existing instance."""
    return series_spec(datagen.SeriesSpec(f"stow-{key}-{repeat}", 1, 1, count))


def stow_workloads(profile: Profile) -> list[Workload]:
    def rate(row: str) -> Metric:
        return Metric(row, "inst/s", "higher", lambda a: a["instances_per_s"])

    single, batched = profile.stow_single, profile.stow_batches * STOW_BATCH
    return [
        Workload(
            "stow-1x1",
            (rate("STOW 1 inst/request (~513 KB), 1 client"),),
            lambda t, r: _stow(t, stow_dataset("1x1", r, single), 1, 1),
        ),
        Workload(
            "stow-1x4",
            (rate(f"STOW 1 inst/request (~513 KB), {STOW_CLIENTS} clients"),),
            lambda t, r: _stow(t, stow_dataset("1x4", r, single * 2), 1, STOW_CLIENTS),
        ),
        Workload(
            "stow-20x1",
            (rate(f"STOW {STOW_BATCH} inst/request, 1 client"),),
            lambda t, r: _stow(t, stow_dataset("20x1", r, batched), STOW_BATCH, 1),
        ),
    ]


def qido_workloads(profile: Profile, level: int) -> list[Workload]:
    """The five QIDO queries against a population of ``level`` tiny instances."""
    population = datagen.Population(QIDO_SEED, 0, level)
    studies = population.study_index(level - 1) + 1
    patients = population.patient_index(studies - 1) + 1
    sample = max(1, min(20, patients))
    patient_ids = [datagen.patient_for(QIDO_SEED, i * patients // sample).patient_id for i in range(sample)]
    study_uids = [datagen.study_for(QIDO_SEED, i * studies // sample).study_uid for i in range(sample)]
    years = [2000 + (i * 7) % 20 for i in range(sample)]
    tag = f"[{_count_label(level)} inst]"
    queries = {
        "patientid": (f"QIDO PatientID exact {tag}", [f"/studies?PatientID={p}" for p in patient_ids]),
        # An explicit limit above the match count: our server pages at 100 by default (with a
        # Warning header) while Orthanc returns every match, which would compare unequal work.
        "patientname": (
            f"QIDO PatientName=DOE* (all matches) {tag}",
            ["/studies?PatientName=DOE*&limit=1000"],
        ),
        "studydate": (
            f"QIDO StudyDate 1-year range, limit=100 {tag}",
            [f"/studies?StudyDate={y}0101-{y}1231&limit=100" for y in years],
        ),
        "series": (f"QIDO /studies/{{s}}/series {tag}", [f"/studies/{s}/series" for s in study_uids]),
        "studies": (f"QIDO /studies?limit=100 {tag}", ["/studies?limit=100"]),
    }
    return [
        Workload(
            f"qido-{key}-{level}",
            (p50(row), p99(row)),
            lambda t, r, ps=paths: _get(
                t, [t.root + p for p in ps], QIDO_ACCEPT, profile.qido_queries, profile.time_cap_s
            ),
        )
        for key, (row, paths) in queries.items()
    ]


def _count_label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def retrieve_bytes(profile: Profile) -> int:
    """About the bytes of the retrieve study's body (for the client's ceiling, ``bench.echo``)."""
    return retrieve_series(profile).count * 525_000


def echo_retrieve_command(port: int, profile: Profile, clients: int) -> dict[str, Any]:
    """The retrieve workload's requests against ``bench.echo``'s prebuilt study body."""
    return {
        "op": "get",
        "host": HOST,
        "port": port,
        "paths": ["/study"],
        "headers": {},
        "requests": max(10, profile.retrieve_requests * clients * 2),
        "concurrency": clients,
        "max_seconds": profile.time_cap_s,
    }


def echo_command(port: int, profile: Profile, clients: int) -> dict[str, Any]:
    return {
        "op": "get",
        "host": HOST,
        "port": port,
        "paths": ["/frame"],
        "headers": {},
        "requests": profile.echo_requests,
        "concurrency": clients,
        "max_seconds": profile.time_cap_s,
    }
