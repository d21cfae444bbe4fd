"""NDIF model actor that serves a model on CPU (server side only).

NDIF 0.1.2's stock `ModelActor` assumes CUDA: `load_from_disk` sets the CUDA device and memory fraction, syncs and
verifies GPU placement; `to_cache`/`from_cache`/`cleanup` call `torch.cuda.*`. On a CPU-only torch those raise
(`module 'torch._C' has no attribute '_cuda_setDevice'`, `Torch not compiled with CUDA enabled`). This subclass
keeps NDIF's request handling (`run`/`execute`, statuses, result upload) and replaces only the CUDA parts.

Selected on the server with the supported knob
``NDIF_MODEL_IMPORT_PATH=steer_audio.remote.cpu_actor.CPUModelActor`` (see deploy/ndif/env.sh, profile ``cpu``).
The scheduler still needs a fake ``GPU`` resource on the Ray node; deploy/ndif/start.sh advertises one.

This module imports `ray` and `ndif`; only the server venv (deploy/ndif/install.sh) has them. Nothing on the
client imports it.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import ray
import torch
from ndif.services.ray.deployments.modeling.base import KILL_REASON_PREEMPTED, BaseModelDeployment
from nnsight.modeling.mixins.remotable import Remotable

logger = logging.getLogger(__name__)

#: Environment variable with the number of torch threads in the actor (1 on a 2-vCPU machine: 2 threads stall).
THREADS_ENV = "STEER_AUDIO_TORCH_THREADS"


class CPUModelDeployment(BaseModelDeployment):
    """`BaseModelDeployment` without CUDA: the weights live in CPU RAM for the replica's lifetime."""

    #: Parking a replica HOT->WARM moves weights GPU->CPU; they are already on CPU, so the controller evicts
    #: this actor's replicas outright instead of caching them.
    CACHEABLE = False

    def load_from_disk(self) -> Remotable:
        threads = os.environ.get(THREADS_ENV)
        if threads:
            torch.set_num_threads(int(threads))
        # The stock loader uses HuggingFaceModel and passes device placement; the model key names our own
        # Remotable class (offline key), which builds the model on CPU. trust_remote_code is dropped: the
        # project's wrappers never execute code from a hub repository.
        kwargs: dict[str, Any] = {k: v for k, v in self.kwargs.items() if k != "trust_remote_code"}
        model = Remotable.from_model_key(self.model_key, dispatch=True, dtype=self.dtype_name, **kwargs)
        model._module.requires_grad_(False)
        logger.info(
            "loaded %s on CPU (dtype %s, %d torch threads)",
            self.model_key,
            self.dtype_name,
            torch.get_num_threads(),
        )
        return model

    async def to_cache(self) -> None:
        await self.cancel(KILL_REASON_PREEMPTED)
        self.cached = True

    def from_cache(self, gpu_mem_bytes_by_id: dict[int, int]) -> None:
        self.gpu_mem_bytes_by_id = gpu_mem_bytes_by_id
        self.cached = False

    def cleanup(self) -> None:
        self.kill_switch.clear()
        self.kill_reason = None
        self.execution_ident = None
        self.model.interleaver.cancel()
        gc.collect()


@ray.remote(num_cpus=1, max_restarts=-1)
class CPUModelActor(CPUModelDeployment):
    """The Ray actor class NDIF instantiates per replica (``NDIF_MODEL_IMPORT_PATH``)."""
