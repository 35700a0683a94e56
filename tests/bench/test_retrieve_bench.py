"""The study-retrieve parts of the benchmark at a tiny size: the trivial server's study body
(the client's ceiling, ``bench.echo``) is read whole by the bench client, the workloads ask for
one and for several clients, and ``bench.metadata_bench --retrieve --clients N`` runs against
the real server, so the tools behind docs/performance.md cannot rot unnoticed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from pathlib import Path

import pytest

from bench import echo, metadata_bench, plan, runner
from bench.httpc import Connection
from bench.servers import Target


def test_the_study_body_is_one_chunk_per_16_parts_and_ends_the_multipart() -> None:
    body = io.BytesIO()
    echo.write_study_body(body, 20 * echo.PART_BYTES)
    raw = body.getvalue()

    assert raw.count(b"--" + echo.BOUNDARY + b"\r\n") == 20
    assert raw.endswith(b"--" + echo.BOUNDARY + b"--\r\n\r\n0\r\n\r\n")
    assert raw.startswith(b"%x\r\n" % (16 * len(b"--" + echo.BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n")
                                       + 16 * (echo.PART_BYTES + 2)))


def test_the_echo_server_sends_the_study_body_the_client_reads_whole() -> None:
    async def run() -> tuple[int, int, int]:
        with tempfile.TemporaryFile() as study:
            echo.write_study_body(study, 3 * echo.PART_BYTES)
            study.flush()
            size = study.tell()
            port = _free_port()
            server = asyncio.create_task(echo.serve(port, 10, study))
            connection = Connection("127.0.0.1", port)
            try:
                for _ in range(100):
                    try:
                        first = await connection.request("GET", "/study", keep_body=False)
                        break
                    except OSError:
                        await asyncio.sleep(0.05)  # not listening yet
                second = await connection.request("GET", "/study", keep_body=True)  # same connection
                small = await connection.request("GET", "/frame", keep_body=True)
            finally:
                await connection.close()
                server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server
            assert second.body.count(b"--" + echo.BOUNDARY + b"\r\n") == 3 and len(small.body) == 10
            return first.length, second.length, size

    first, second, size = asyncio.run(run())
    part = len(b"--" + echo.BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n") + echo.PART_BYTES + 2
    assert first == second == 3 * part + len(b"--" + echo.BOUNDARY + b"--\r\n") < size  # without the chunks' framing


def test_the_retrieve_workloads_ask_with_one_client_and_with_several() -> None:
    target = Target("ours", "ours", 8080, "/v1", process=None, accept={"retrieve": "multipart/related"})  # type: ignore[arg-type]
    workloads = {w.key: w for w in plan.retrieve_workloads(plan.QUICK)}

    one, several = workloads["retrieve"].command(target, 0), workloads["retrieve-4"].command(target, 0)
    assert (one["concurrency"], several["concurrency"]) == (1, plan.RETRIEVE_CLIENTS)
    assert several["requests"] == plan.QUICK.retrieve_requests * plan.RETRIEVE_CLIENTS  # as many each
    assert one["paths"] == several["paths"] and one["paths"][0].startswith("/v1/studies/")
    assert "4 clients" in workloads["retrieve-4"].metrics[0].row
    assert {w.key for w in plan.read_workloads(plan.QUICK)} >= {"retrieve", "retrieve-4"}


def test_the_retrieve_ceiling_line_gives_mb_per_s_and_the_trivial_servers_cpu(tmp_path: Path) -> None:
    run = runner.Run(runner.Options(True, None, tmp_path / "out.json", 0, False, "python -m bench"), plan.QUICK)
    run.calibration = {
        "1_clients": {"succeeded": 10, "req_per_s": 3000.0},
        "retrieve_1_clients": {"succeeded": 10, "bytes_in": 200_000_000, "wall_s": 0.1,
                               "server_cpu_ms_per_request": 9.0},
        "retrieve_4_clients": {"succeeded": 0, "bytes_in": 0, "wall_s": 0.1},  # failed: left out
    }
    assert runner.retrieve_ceiling_line(run) == (
        "client ceiling (trivial server, study-retrieve body by sendfile): 1 client(s) 2,000 MB/s "
        "(server CPU 9.0 ms/request)")


def test_the_retrieve_tool_runs_against_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert metadata_bench.main(["--retrieve", "--instances", "3", "--requests", "2", "--clients", "2"]) == 0
    out = capsys.readouterr().out
    assert "study retrieve, 3 instances" in out and "2 requests x 2 client(s)" in out
    assert "aggregate" in out and "time to the headers" in out and "server CPU" in out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
