"""Models and devices: a model's saved spec, checking a name and resolving where it loads from
(before any run or job exists), and the devices this machine offers with their free memory."""

from embtui.engine.devices import DeviceInfo, list_devices
from embtui.engine.models import ModelSpec, check_model_name, resolve_source

__all__ = ["DeviceInfo", "ModelSpec", "check_model_name", "list_devices", "resolve_source"]
