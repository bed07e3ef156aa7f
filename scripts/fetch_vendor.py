#!/usr/bin/env python3
"""Fetches the console's JavaScript libraries from the npm registry, without Node.

Each library is pinned by version and by the sha512 integrity the registry publishes for its
tarball (``dist.integrity`` of ``https://registry.npmjs.org/<name>/<version>``): a tarball
that does not hash to it is refused and nothing is written. Only the one dist file the console
loads is extracted, into ``ui/static/vendor/`` (git-ignored; ``make run`` and ``make test``
run this first, and it does nothing when the files are already there and intact).

Why Chart.js and not ECharts: Chart.js 4 is about 200 kB against ECharts' 1 MB, draws on a
canvas whose ``toBase64Image`` gives the PNG download, and keeps each chart's data on the
instance (``Chart.getChart(canvas).data``), which the browser test compares with the table.
It has no heat map; chartjs-chart-matrix (the Chart.js organisation's own plugin) adds one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
TARGET = Path(__file__).resolve().parents[1] / "ui" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # as published by the registry: "sha512-<base64>"
    member: str  # the file inside the tarball
    output: str  # its name under ui/static/vendor

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"


PACKAGES = [
    Package("chart.js", "4.4.7",
            "sha512-pwkcKfdzTMAU/+jNosKhNL2bHtJc/sSmYgVbuGTEDhzkrhmyihmP7vUc/5ZK9WopidMDHNe3Wm7jOd"
            "/WhuHWuw==",
            "package/dist/chart.umd.js", "chart.umd.js"),
    Package("chartjs-chart-matrix", "3.1.0",
            "sha512-pdo8DnhFXOisjbLDgfkzZH1w0xmjGqiaAMgkQSHCEMzxQENsXTgkXImIyweDiO7SqlE5PuzjhklyB"
            "CiorQhRmw==",
            "package/dist/chartjs-chart-matrix.min.js", "chartjs-chart-matrix.min.js"),
]


class IntegrityError(Exception):
    pass


def check_integrity(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise IntegrityError(f"unsupported integrity algorithm {algorithm!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != expected:
        raise IntegrityError(f"sha512 mismatch: expected {expected}, got {got}")


def extract(data: bytes, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        info = tar.getmember(member)
        if not info.isfile():
            raise IntegrityError(f"{member} is not a regular file in the tarball")
        fh = tar.extractfile(info)
        assert fh is not None
        return fh.read()


def _digest(content: bytes) -> str:
    # the installed file's own hash: an edited or truncated copy is fetched again
    return "sha256-" + hashlib.sha256(content).hexdigest()


def stamp_of(package: Package) -> Path:
    return TARGET / f".{package.output}.integrity"


def fetch(package: Package, timeout: float = 60.0) -> bool:
    """Downloads and installs one package's file; False when it was already there."""
    out = TARGET / package.output
    stamp = stamp_of(package)
    if (out.exists() and stamp.exists()
            and stamp.read_text().split() == [package.integrity, _digest(out.read_bytes())]):
        return False
    with urllib.request.urlopen(package.tarball, timeout=timeout) as response:
        data = response.read()
    check_integrity(data, package.integrity)
    content = extract(data, package.member)
    TARGET.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(out)
    stamp.write_text(f"{package.integrity} {_digest(content)}\n")
    return True


def main() -> int:
    for package in PACKAGES:
        try:
            if fetch(package):
                print(f"vendor: {package.name} {package.version} -> ui/static/vendor/"
                      f"{package.output}")
        except (OSError, IntegrityError, KeyError, tarfile.TarError) as exc:
            print(f"vendor: cannot install {package.name} {package.version} from "
                  f"{package.tarball}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
