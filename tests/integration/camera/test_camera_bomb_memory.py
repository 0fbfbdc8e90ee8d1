"""A decompression bomb in a real process: a 600 KB PNG of 25000 × 25000 pixels, which OpenCV
would decode into 1.9 GB, is refused by ``kiosk check-photo`` from its header, in little memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.camera.imaging import MAX_IMAGE_PIXELS
from tests.support.images import png_of_zeros

CHECK_PHOTO_THEN_PEAK_RSS = """
import argparse, sys
from edge.camera.cli import register_kiosk
parser = argparse.ArgumentParser(prog="kioskmatch")
kiosk = parser.add_subparsers(dest="command", required=True).add_parser("kiosk")
register_kiosk(kiosk.add_subparsers(dest="kiosk_command", required=True))
args = parser.parse_args(sys.argv[1:])
status = args.func(args)
# VmHWM is this process's own peak (ru_maxrss would carry the forking parent's across exec).
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))  # KiB
sys.exit(status)
"""


def test_check_photo_refuses_a_25000_pixel_square_png_in_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_of_zeros(25_000, 25_000))
    assert path.stat().st_size < 1_000_000
    done = subprocess.run(
        [sys.executable, "-c", CHECK_PHOTO_THEN_PEAK_RSS, "kiosk", "check-photo", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "25000 × 25000" in done.stderr and f"{MAX_IMAGE_PIXELS:,} pixels" in done.stderr
    peak_mib = int(done.stdout.strip()) / 1024
    assert peak_mib < 400, f"peak RSS {peak_mib:.0f} MiB"
