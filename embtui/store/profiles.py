"""The profiles table: a model's measured cost (latency, throughput, memory) per project, device
and precision, stored as JSON; the latest measurement replaces the one before."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embtui.store.db import Workspace


class ProfilesRepo:
    """Mixed into :class:`~embtui.store.api.Store`, which provides ``ws``."""

    ws: "Workspace"

    def save_profile(self, project: str, model_name: str, device: str, precision: str,
                     model_spec: dict[str, Any], result: dict[str, Any]) -> None:
        with self.ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, now())",
                        [project, model_name, device, precision, json.dumps(model_spec, sort_keys=True),
                         json.dumps(result, sort_keys=True)])

    def list_profiles(self, project: str) -> list[dict[str, Any]]:
        """Every profile of the project: {"model_name", "device", "precision", "model_spec",
        "result", "created_at"}, by model name."""
        with self.ws.connect() as con:
            rows = con.execute(
                "SELECT model_name, device, precision, model_spec, result, created_at FROM profiles "
                "WHERE project = ? ORDER BY model_name, device, precision", [project]).fetchall()
        return [{"model_name": r[0], "device": r[1], "precision": r[2], "model_spec": json.loads(r[3]),
                 "result": json.loads(r[4]), "created_at": r[5]} for r in rows]
