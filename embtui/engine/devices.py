"""Compute devices: detect CPU, CUDA GPUs and MPS with their memory, and resolve `auto`."""

from __future__ import annotations

import os
import platform
import re
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


def list_devices() -> list[DeviceInfo]:
    """Every device a model can run on here. Imports torch (about a second)."""
    devices = [cpu_device()]
    import torch

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            devices.append(DeviceInfo(f"cuda:{i}", torch.cuda.get_device_name(i), total, free,
                                      _nvml_utilization(i)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", None, None))
    return devices


def check_device_name(device: str) -> str:
    """Validate the syntax of a device name (no torch import)."""
    if device in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise EmbtuiError(f"unknown device '{device}'", "use auto, cpu, cuda, cuda:N or mps")


def resolve_device(device: str) -> str:
    """Turn `auto` into the best available device and check that a named one exists."""
    check_device_name(device)
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
