"""Hub helpers shared by every kind that loads a checkpoint (a leaf module: imports nothing of the package
but the errors)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SteerAudioError


def hub_source(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(what `from_pretrained` loads, its keyword arguments): a local folder offline, or a hub id + revision."""
    local = spec.get("local_path") or (spec["name"] if spec["kind"] == "path" else None)
    if local:
        return str(local), {"local_files_only": True}
    return spec["hub_id"], {"revision": spec.get("revision")}


def missing_weights(spec: dict[str, Any], err: Exception) -> SteerAudioError:
    """The one-line error for a checkpoint that is neither in the HF cache nor a local folder."""
    where = spec.get("hub_id") or spec["name"]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return SteerAudioError(
        f"cannot load {where!r} (revision {spec.get('revision')}): not in the Hugging Face cache"
        + (" and HF_HUB_OFFLINE=1" if offline else "")
        + f". Download it where a hub is reachable (`hf download {where}`) and copy the cache, "
        f"or pass a local folder to --model. ({type(err).__name__})"
    )
