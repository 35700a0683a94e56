"""``python -m bench [--quick] [--only ours|orthanc] [--out FILE] [--workers N]``.

``python -m bench --wsi [--quick] ...`` runs the whole-slide-imaging benchmark instead (``bench.wsi``);
``python -m bench --scale [--instances N] ...`` the scale benchmark (``bench.scale``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.runner import Options, main

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, fewer repeats (< 2 minutes)")
    parser.add_argument("--only", choices=["ours", "orthanc"], help="benchmark one server only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--workers", type=int, default=0, help="pass --workers N to our server")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument(
        "--qido-sizes",
        type=_sizes,
        help="QIDO population sizes, comma-separated (default 10000,100000; --quick 2000)",
    )
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "bench", *argv])
    return Options(args.quick, args.only, args.out, args.workers, args.keep, command, args.qido_sizes)


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError("give sizes of at least 10 instances, e.g. 10000,100000")
    return sizes


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C so every context manager stops its processes and the namespace.
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Explicit, because a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if "--scale" in sys.argv[1:]:
        from bench import scale

        sys.exit(scale.main([arg for arg in sys.argv[1:] if arg != "--scale"], prog="python -m bench --scale"))
    if "--wsi" in sys.argv[1:]:
        from bench.wsi import cli

        sys.exit(cli([arg for arg in sys.argv[1:] if arg != "--wsi"], prog="python -m bench --wsi"))
    sys.exit(main(parse_args(sys.argv[1:])))
