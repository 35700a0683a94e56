"""The orchestrator: start everything, load fixtures, run workloads interleaved, report."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import plan
from bench.noise import NoiseMeter, groups_cpu_seconds
from bench.procs import ClientProcess, ManagedProcess, Namespace
from bench.report import SERVER_KEYS, Journal, Results, machine_info, table
from bench.servers import HOST, ServerUnavailable, Target, start_orthanc, start_ours

# Inside a private namespace every port is free, so fixed ones keep logs easy to read.
NS_PORTS = {"ours": 18080, "orthanc": 18042, "echo": 18099}
ECHO_BODY_BYTES = 65536  # the size of a native frame, so calibration moves the same bytes
POPULATION_BATCH = 100
POPULATION_CLIENTS = 4
CLIENT_BUSY_WARNING = 0.85
NOISY_CORES = 0.3  # foreign CPU (in cores) above which a timed run is flagged as disturbed
MIN_NOISE_WALL_S = 0.5


@dataclass
class Options:
    quick: bool
    only: str | None
    out: Path
    workers: int
    keep: bool
    command: str
    qido_sizes: tuple[int, ...] | None = None


@dataclass
class Run(Journal):
    """Everything a run accumulates; serialised at the end."""

    options: Options
    profile: plan.Profile
    client: ClientProcess | None = None
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    results: Results = field(default_factory=Results)
    loads: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    noise: NoiseMeter = field(default_factory=NoiseMeter)
    foreign_at_start: float | None = None
    foreign_average: float | None = None
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    machine: dict[str, Any] = field(default_factory=machine_info)  # taken at start (load average)
    ours_failed: bool = False
    aborted: bool = False



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def isolation(run: Run, stack: contextlib.ExitStack) -> list[str] | None:
    """The command prefix that enters a fresh namespace, or None when there can be none."""
    if reason := Namespace.unavailable_reason():
        run.note(f"no network namespace: {reason}")
        return None
    try:
        ns = stack.enter_context(Namespace.create())
    except RuntimeError as exc:
        run.note(f"could not create a network namespace: {exc}")
        return None
    return ns.prefix()


def start_targets(run: Run, stack: contextlib.ExitStack, prefix: list[str] | None, workdir: Path) -> None:
    wanted = [run.options.only] if run.options.only else list(SERVER_KEYS)
    ports = NS_PORTS if prefix is not None else {k: free_port() for k in NS_PORTS}
    for key in wanted:
        try:
            if key == "ours":
                data = workdir / "ours-data"
                data.mkdir()
                target = start_ours(
                    prefix or [], run.client, ports["ours"], data, workdir / "ours.log", run.options.workers
                )
            elif prefix is None:
                raise ServerUnavailable(
                    "no network namespace here (needs root and iproute2); Orthanc binds 0.0.0.0, "
                    "so the harness does not run it outside one"
                )
            else:
                target = start_orthanc(
                    prefix, run.client, ports["orthanc"], workdir / "orthanc", workdir / "orthanc.log"
                )
        except ServerUnavailable as exc:
            run.skipped[key] = str(exc)
            run.ours_failed |= key == "ours"
            print(f"NOTE: skipping {key}: {exc}", flush=True)
            continue
        stack.callback(target.process.stop)
        run.noise.watch(target.process.proc.pid)
        run.targets.append(target)
        run.log(f"{target.label} ready at {target.url}")


def calibrate(run: Run, prefix: list[str] | None, workdir: Path, stack: contextlib.ExitStack) -> None:
    """How fast the client goes against a server that does nothing (its ceiling)."""
    port = NS_PORTS["echo"] if prefix is not None else free_port()
    argv = [*(prefix or []), sys.executable, "-m", "bench.echo", str(port), str(ECHO_BODY_BYTES),
            str(plan.retrieve_bytes(run.profile))]
    echo = ManagedProcess("echo", argv, workdir / "echo.log")
    stack.callback(echo.stop)
    run.noise.watch(echo.proc.pid)
    if echo.wait_for_line("ready", 30) is None:
        run.note(f"echo server did not start: {echo.tail()}")
        return
    for clients in (1, plan.FRAME_CLIENTS):
        answer = run.call(**plan.echo_command(port, run.profile, clients))
        run.calibration[f"{clients}_clients"] = answer
    calibrate_retrieve(run, port, echo.proc.pid)
    echo.stop()
    run.log(
        "client ceiling: "
        + ", ".join(
            f"{k}: {v['req_per_s']:.0f} req/s" for k, v in run.calibration.items() if "req_per_s" in v
        )
    )


def calibrate_retrieve(run: Run, port: int, echo_pid: int) -> None:
    """The client's MB/s for a study-retrieve body from a server that only sendfiles it:
    what the retrieve rows cannot exceed, whichever server answers; and that server's CPU
    per request, the kernel's share (sendfile and loopback TCP) no server can avoid."""
    for clients in (1, plan.RETRIEVE_CLIENTS):
        cpu = groups_cpu_seconds({echo_pid})
        answer = run.call(**plan.echo_retrieve_command(port, run.profile, clients))
        cpu = groups_cpu_seconds({echo_pid}) - cpu
        if answer.get("requests"):
            answer["server_cpu_ms_per_request"] = cpu * 1000 / answer["requests"]
        run.calibration[f"retrieve_{clients}_clients"] = answer


def retrieve_ceiling_line(run: Run) -> str:
    rates = [
        f"{key.split('_')[1]} client(s) {answer['bytes_in'] / answer['wall_s'] / 1e6:,.0f} MB/s "
        f"(server CPU {answer.get('server_cpu_ms_per_request', 0):.1f} ms/request)"
        for key, answer in run.calibration.items()
        if key.startswith("retrieve_") and answer.get("succeeded") and answer.get("wall_s")
    ]
    return f"client ceiling (trivial server, study-retrieve body by sendfile): {', '.join(rates)}" if rates else ""


def load(
    run: Run, target: Target, label: str, dataset: dict[str, Any], per_request: int, clients: int = 1
) -> bool:
    answer = run.call(
        op="stow",
        host=HOST,
        port=target.port,
        path=target.stow_path,
        dataset=dataset,
        per_request=per_request,
        concurrency=clients,
        stream=True,
    )
    record = {
        "server": target.key,
        "data": label,
        **{k: answer.get(k) for k in ("instances", "wall_s", "errors")},
    }
    record["instances_per_s"] = answer.get("instances_per_s")
    run.loads.append(record)
    if not answer.get("ok") or answer.get("errors"):
        problem = answer.get("first_error") or answer.get("error")
        run.note(f"{target.label}: loading {label} failed ({answer.get('errors')} errors): {problem}")
        run.ours_failed |= target.key == "ours"
        return False
    run.log(f"{target.label}: loaded {label}: {answer['instances']} inst in {answer['wall_s']:.1f}s")
    return True


def negotiate(run: Run, target: Target, kind: str, path: str, candidates: list[str], multipart: bool) -> None:
    """Pick the first Accept this server answers 200 to (and how it answered), recorded."""
    tried = []
    for accept in candidates:
        answer = run.call(
            op="request", host=HOST, port=target.port, path=path, headers={"Accept": accept}, max_body=0
        )
        content_type = answer.get("headers", {}).get("content-type", "")
        tried.append({"accept": accept, "status": answer.get("status"), "content_type": content_type})
        if answer.get("status") == 200 and (not multipart or content_type.startswith("multipart/related")):
            target.accept[kind] = accept
            target.info.setdefault("negotiated", {})[kind] = {
                "accept": accept,
                "content_type": content_type,
                "bytes": answer.get("length"),
            }
            return
    target.info.setdefault("negotiation_failures", {})[kind] = tried
    run.note(f"{target.label}: no Accept form worked for {kind} ({path}): {tried}")
    run.ours_failed |= target.key == "ours"


def negotiate_all(run: Run, target: Target) -> None:
    profile = run.profile
    for kind in ("native", "jpeg"):
        spec = plan.multiframe(profile, kind)
        negotiate(run, target, f"frames-{kind}", plan.frame_paths(target, spec)[0], plan.FRAME_ACCEPTS, True)
    study = plan.retrieve_series(profile).study.study_uid
    negotiate(run, target, "retrieve", f"{target.root}/studies/{study}", plan.RETRIEVE_ACCEPTS, True)
    meta = plan.metadata_series(profile)
    path = f"{target.root}/studies/{meta.study.study_uid}/series/{meta.series_uid}/metadata"
    negotiate(run, target, "metadata", path, plan.METADATA_ACCEPTS, False)
    if "metadata" in target.accept:
        answer = run.call(
            op="request",
            host=HOST,
            port=target.port,
            path=path,
            headers={"Accept": target.accept["metadata"]},
            max_body=0,
            count_json=True,
        )
        if answer.get("json_items") != meta.count:
            run.note(
                f"{target.label}: series metadata has {answer.get('json_items')} items, expected {meta.count}"
            )


def run_workload(run: Run, workload: plan.Workload, target: Target, repeat: int) -> None:
    if not target.process.alive():
        return
    try:
        command = workload.command(target, repeat)
    except KeyError as missing:  # an Accept form that could not be negotiated
        for metric in workload.metrics:
            run.results.error(metric.row, metric.unit, metric.better, target.key, f"skipped: no {missing}")
        return
    before = run.noise.start()
    server_cpu = groups_cpu_seconds({target.process.proc.pid})
    answer = run.call(**command)
    server_cpu = groups_cpu_seconds({target.process.proc.pid}) - server_cpu
    foreign = run.noise.foreign_cores(before)
    run.runs.append(
        {
            "workload": workload.key,
            "server": target.key,
            "repeat": repeat + 1,
            "foreign_cores": foreign,
            # The server's CPU (user + system, every process of its group) per request: moves
            # far less than a rate when other processes load the machine.
            "server_cpu_ms_per_request": server_cpu * 1000 / answer["requests"] if answer.get("requests") else None,
            **answer,
        }
    )
    summary = _describe(answer)
    for metric in workload.metrics:
        if not answer.get("ok") or not answer.get("succeeded"):
            run.results.error(metric.row, metric.unit, metric.better, target.key, summary)
            continue
        run.results.add(metric.row, metric.unit, metric.better, target.key, metric.read(answer))
        if answer.get("errors"):
            run.results.error(metric.row, metric.unit, metric.better, target.key, summary)
    if answer.get("errors") or not answer.get("ok"):
        run.ours_failed |= target.key == "ours"
        run.log(f"  {target.label} {workload.key}: {summary}")
    busy = answer.get("client_cpu_fraction", 0)
    if busy > CLIENT_BUSY_WARNING and command.get("concurrency", 1) > 1:
        run.note(f"client CPU {busy:.0%} busy during {workload.key} on {target.label}: may be client-bound")
    shown = (
        ", ".join(f"{m.unit}={m.read(answer):.2f}" for m in workload.metrics)
        if answer.get("succeeded")
        else ""
    )
    cpu = run.runs[-1]["server_cpu_ms_per_request"]
    run.log(f"  r{repeat + 1} {target.label:7} {workload.key}: {shown}"
            + (f" (server CPU {cpu:.1f} ms/request)" if cpu is not None else ""))
    if not target.process.alive():
        run.note(f"{target.label} exited during {workload.key}:\n{target.process.tail()}")
        run.ours_failed |= target.key == "ours"


def _describe(answer: dict[str, Any]) -> str:
    if not answer.get("ok"):
        return f"client error: {answer.get('error')}"
    return f"{answer.get('succeeded')}/{answer.get('requests')} ok, statuses {answer.get('statuses')}" + (
        f", first error: {answer['first_error'][:300]}" if answer.get("first_error") else ""
    )


def run_interleaved(run: Run, workloads: list[plan.Workload]) -> None:
    """Each repeat runs every workload on every server, alternating which server goes
    first, so slow drift (caches, page cache, thermal) does not favour one of them."""
    for repeat in range(run.profile.repeats):
        order = run.targets if repeat % 2 == 0 else list(reversed(run.targets))
        for workload in workloads:
            for target in order:
                run_workload(run, workload, target, repeat)


def count_results(run: Run, workloads: list[plan.Workload]) -> None:
    """How many results each server returns for the first URL of each QIDO workload."""
    for workload in workloads:
        for target in run.targets:
            command = workload.command(target, 0)
            answer = run.call(
                op="request",
                host=HOST,
                port=target.port,
                path=command["paths"][0],
                headers=command["headers"],
                max_body=0,
                count_json=True,
            )
            for metric in workload.metrics:
                run.results.row(metric.row, metric.unit, metric.better).result_counts[target.key] = (
                    answer.get("json_items")
                )
        counts = {
            t.key: run.results.rows[workload.metrics[0].row].result_counts.get(t.key) for t in run.targets
        }
        if len(set(counts.values())) > 1:
            run.note(f"{workload.key}: servers return different result counts {counts}")


def run_qido(run: Run) -> None:
    loaded = 0
    for level in run.profile.qido_levels:
        for target in run.targets:
            load(
                run,
                target,
                f"QIDO population {loaded}-{level}",
                plan.population_load(loaded, level),
                POPULATION_BATCH,
                POPULATION_CLIENTS,
            )
        loaded = level
        workloads = plan.qido_workloads(run.profile, level)
        count_results(run, workloads)
        run_interleaved(run, workloads)


def execute(run: Run, workdir: Path) -> None:
    with contextlib.ExitStack() as stack:
        run.log(f"work dir {workdir}")
        prefix = isolation(run, stack)
        if prefix is None:
            run.note("running on the host loopback, without Orthanc")
        run.foreign_at_start = measure_idle_load(run)
        run.client = ClientProcess(prefix or [], workdir / "client.log")
        stack.callback(run.client.stop)
        run.noise.watch(run.client.proc.pid)
        start_targets(run, stack, prefix, workdir)
        if not run.targets:
            return
        calibrate(run, prefix, workdir, stack)
        for target in run.targets:
            for label, dataset, per_request in plan.fixture_loads(run.profile):
                load(run, target, label, dataset, per_request)
            negotiate_all(run, target)
        run_interleaved(run, plan.read_workloads(run.profile) + plan.stow_workloads(run.profile))
        run_qido(run)
        for target in run.targets:
            target.info["log_tail"] = target.process.tail(5)


def measure_idle_load(run: Run) -> float:
    """CPU other processes use while the harness has started nothing yet (one second)."""
    before = run.noise.start()
    time.sleep(1.0)
    cores = run.noise.foreign_cores(before)
    if cores > NOISY_CORES:
        run.note(f"the machine is busy before the benchmark starts: other processes use {cores:.1f} cores")
    return cores


def noise_note(run: Run) -> None:
    """Flag disturbed runs. Runs shorter than MIN_NOISE_WALL_S are left out: /proc/stat counts
    in 10 ms ticks, which makes a 30 ms window look busy or idle by chance."""
    timed = [r for r in run.runs if r.get("wall_s", 0) >= MIN_NOISE_WALL_S]
    if not timed:
        return
    average = sum(r["foreign_cores"] * r["wall_s"] for r in timed) / sum(r["wall_s"] for r in timed)
    run.foreign_average = average
    noisy = [r for r in timed if r["foreign_cores"] > NOISY_CORES]
    if noisy:
        worst = max(r["foreign_cores"] for r in noisy)
        run.note(
            f"other processes used > {NOISY_CORES} cores during {len(noisy)} of {len(timed)} timed runs "
            f"(average {average:.2f}, up to {worst:.1f} of {os.cpu_count()} cores): those numbers are "
            "disturbed; see foreign_cores in the JSON runs"
        )


def to_json(run: Run) -> dict[str, Any]:
    return {
        "schema": 1,
        "command": run.options.command,
        "profile": asdict(run.profile),
        "options": {"only": run.options.only, "workers": run.options.workers or None},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
        "duration_s": round(time.time() - run.started, 1),
        "machine": run.machine,
        "servers": {
            t.key: {"label": t.label, "url": t.url, "info": t.info, "accept": t.accept} for t in run.targets
        },
        "skipped": run.skipped,
        "calibration": run.calibration,
        "foreign_cores_at_start": run.foreign_at_start,
        "foreign_cores_average": run.foreign_average,
        "loads": run.loads,
        "rows": [row.as_json() for row in run.results.rows.values()],
        "notes": run.notes,
        "runs": run.runs,
        "measurement": {
            "statistic": "median over repeats of each per-repeat value",
            "latency": "per-request wall time at the client, keep-alive connection, nearest-rank p50/p99",
            "client": "separate process (bench.client), asyncio, one connection per concurrent client",
        },
    }


def main(options: Options) -> int:
    profile = plan.QUICK if options.quick else plan.FULL
    if options.qido_sizes:
        profile = replace(profile, qido_levels=tuple(sorted(options.qido_sizes)))
    run = Run(options, profile)
    workdir = Path(tempfile.mkdtemp(prefix="dwbench-"))
    try:
        execute_and_report(run, workdir)
    finally:
        if options.keep:
            print(f"server logs and data kept in {workdir}")
        else:
            # After the report: 100k instances are several hundred thousand files to delete.
            run.log(f"removing {workdir}")
            shutil.rmtree(workdir, ignore_errors=True)
    if not run.targets:
        return 1
    if run.aborted:
        return 2
    # Orthanc's failures are findings; ours failing makes the CI smoke run fail.
    return 2 if run.ours_failed and options.only in (None, "ours") else 0


def execute_and_report(run: Run, workdir: Path) -> None:
    try:
        execute(run, workdir)
    except KeyboardInterrupt:
        run.note("interrupted: partial results")
        run.aborted = True
    except Exception as exc:  # the report of what did run is still worth writing
        traceback.print_exc()
        run.note(f"benchmark aborted: {type(exc).__name__}: {exc}")
        run.aborted = True
    noise_note(run)
    print_summary(run)
    out = run.options.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_json(run), indent=2, default=str) + "\n")
    print(f"\nJSON written to {out} ({time.time() - run.started:.0f}s)", flush=True)


def print_summary(run: Run) -> None:
    keys = [t.key for t in run.targets]
    print()
    print(f"DICOMweb benchmark ({run.profile.name}, median of {run.profile.repeats} repeats)")
    for key, reason in run.skipped.items():
        print(f"skipped {key}: {reason.splitlines()[0] if reason else ''}")
    if keys:
        print(table(run.results, keys))
    if run.calibration:
        rates = ", ".join(
            f"{k.split('_')[0]} client(s) {v.get('req_per_s', 0):,.0f} req/s"
            for k, v in run.calibration.items()
            if not k.startswith("retrieve_")
        )
        print(f"client ceiling (trivial server, 64 KB GET): {rates}")
        if line := retrieve_ceiling_line(run):
            print(line)
    print("(!) = some requests failed, ERR = all failed; details in the JSON 'errors' and notes")
    for note in run.notes:
        print(f"note: {note}")
