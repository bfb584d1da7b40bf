"""Compute devices: detect CPU, CUDA GPUs and MPS with their memory, and resolve `auto`."""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import asdict, dataclass

from embtui.errors import EmbtuiError


@dataclass(frozen=True)
class DeviceInfo:
    id: str                      # "cpu", "cuda:0", "mps"
    name: str
    total_memory: int | None     # bytes
    free_memory: int | None      # bytes
    utilization: float | None = None  # percent, GPUs with nvidia-ml-py only

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_device() -> DeviceInfo:
    import psutil

    vm = psutil.virtual_memory()
    return DeviceInfo("cpu", f"{_cpu_name()} ({os.cpu_count()} cores)", vm.total, vm.available,
                      psutil.cpu_percent(interval=None))


def _nvml_utilization(index: int) -> float | None:
    try:
        import pynvml  # nvidia-ml-py, optional

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # noqa: BLE001 - optional extra; absent or no driver
        return None


def _visible(physical: list[DeviceInfo]) -> list[DeviceInfo]:
    """GPUs as CUDA numbers them: CUDA_VISIBLE_DEVICES (integer form) picks and renumbers."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return physical
    picks = [p.strip() for p in env.split(",") if p.strip()]
    if not all(p.isdigit() for p in picks):
        return physical  # UUID form: keep NVML's order
    out = []
    for i, p in enumerate(int(p) for p in picks):
        if p < len(physical):
            d = physical[p]
            out.append(DeviceInfo(f"cuda:{i}", d.name, d.total_memory, d.free_memory, d.utilization))
    return out


def _nvml_gpus() -> list[DeviceInfo] | None:
    """CUDA GPUs through NVML (nvidia-ml-py); None when it is not installed or has no driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            except pynvml.NVMLError:
                util = None
            gpus.append(DeviceInfo(f"cuda:{i}", name.decode() if isinstance(name, bytes) else str(name),
                                   int(mem.total), int(mem.free), util))
        return _visible(gpus)
    except Exception:  # noqa: BLE001 - no driver, no GPU
        return None


def _smi_gpus() -> list[DeviceInfo] | None:
    """CUDA GPUs through `nvidia-smi` when NVML's Python binding is not installed."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,memory.total,memory.free,utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5 or not parts[0].isdigit():
            continue

        def num(text: str) -> float | None:
            try:
                return float(text)
            except ValueError:
                return None

        total, free, util = num(parts[2]), num(parts[3]), num(parts[4])
        gpus.append(DeviceInfo(f"cuda:{parts[0]}", parts[1], int(total * 2**20) if total else None,
                               int(free * 2**20) if free is not None else None, util))
    return _visible(gpus)


def _torch_devices() -> list[DeviceInfo]:
    import torch

    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            devices.append(DeviceInfo(f"cuda:{i}", torch.cuda.get_device_name(i), total, free,
                                      _nvml_utilization(i)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", None, None))
    return devices


def list_devices(use_torch: bool = False) -> list[DeviceInfo]:
    """Every device a model can run on here.

    Without ``use_torch`` it never imports torch (a second or more): the CPU through psutil, GPUs
    through NVML (nvidia-ml-py) or `nvidia-smi`, MPS on Apple silicon by platform. With it, torch
    answers (what a model will actually see).
    """
    devices = [cpu_device()]
    if use_torch:
        return devices + _torch_devices()
    gpus = _nvml_gpus()
    if gpus is None:
        gpus = _smi_gpus() or []
    devices += gpus
    if sys.platform == "darwin" and platform.machine() == "arm64":
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", None, None))
    return devices


def check_device_name(device: str) -> str:
    """Validate the syntax of a device name (no torch import): one device, ``gpus`` (every CUDA
    device of this server) or a comma-separated list (``cuda:0,cuda:1``) to encode on several."""
    if device == "gpus":
        return device
    names = [d.strip() for d in device.split(",")] if "," in device else [device]
    for name in names:
        if not (name in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", name)):
            raise EmbtuiError(f"unknown device '{name}'",
                              "use auto, cpu, cuda, cuda:N, mps, gpus or a list such as cuda:0,cuda:1")
    return device


def resolve_device(device: str) -> str:
    """Turn `auto` into the best available device and check that a named one exists. Of several
    devices (``cuda:0,cuda:1``, ``gpus``) the first: what runs on one device (a live query, a
    reranker) runs there, while encoding a corpus uses them all (engine/executors.py)."""
    check_device_name(device)
    if device == "gpus":
        device = "cuda:0"
    elif "," in device:
        device = device.split(",")[0].strip()
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EmbtuiError(f"device {device} requested but CUDA is not available here",
                              "use --device cpu or auto")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise EmbtuiError(f"device {device} does not exist ({torch.cuda.device_count()} GPU(s))",
                              "see `embtui devices`")
        return f"cuda:{index}"
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise EmbtuiError("device mps requested but MPS is not available here", "use --device cpu")
    return "mps"
