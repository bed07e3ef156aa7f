"""The charting library's installer: a tarball that does not hash to the pinned sha512 is
refused and writes nothing; the right one installs only its dist file."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("fetch_vendor",
                                                  ROOT / "scripts" / "fetch_vendor.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fetch_vendor"] = module
    spec.loader.exec_module(module)
    return module


fv = _load()


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_tampered_tarball_is_refused_and_nothing_written(tmp_path, monkeypatch) -> None:
    good = _tarball({"package/dist/lib.js": b"ok", "package/other.js": b"x"})
    bad = _tarball({"package/dist/lib.js": b"evil"})
    package = fv.Package("lib", "1.0.0", _integrity(good), "package/dist/lib.js", "lib.js")
    monkeypatch.setattr(fv, "TARGET", tmp_path)
    monkeypatch.setattr(fv.urllib.request, "urlopen", lambda url, timeout: _Response(bad))
    with pytest.raises(fv.IntegrityError, match="sha512 mismatch"):
        fv.fetch(package)
    assert list(tmp_path.iterdir()) == []

    urls = []

    def serve(url, timeout):
        urls.append(url)
        return _Response(good)

    monkeypatch.setattr(fv.urllib.request, "urlopen", serve)
    assert fv.fetch(package) is True
    assert (tmp_path / "lib.js").read_bytes() == b"ok"
    assert not (tmp_path / "other.js").exists()
    assert urls == ["https://registry.npmjs.org/lib/-/lib-1.0.0.tgz"]
    assert fv.fetch(package) is False  # installed and intact: no download
    assert len(urls) == 1
    (tmp_path / "lib.js").write_bytes(b"edited")  # changed on disk: fetched again
    assert fv.fetch(package) is True
    assert (tmp_path / "lib.js").read_bytes() == b"ok" and len(urls) == 2


def test_the_pinned_packages_are_sha512_and_chart_js_4() -> None:
    names = {p.name: p for p in fv.PACKAGES}
    assert names["chart.js"].version.startswith("4.")
    assert "chartjs-chart-matrix" in names
    assert all(p.integrity.startswith("sha512-") for p in fv.PACKAGES)
