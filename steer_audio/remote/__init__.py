"""Remote execution of the toolkit's traces on a (self-hosted) NDIF server.

`client` is what the toolkit imports: it resolves the server URL / API key and configures nnsight.
`cpu_actor` is server-side only (it imports `ray` and `ndif`, which the client never needs).
"""

from steer_audio.remote.client import (
    ENV_API_KEY,
    ENV_HOST,
    LOCAL_SIMULATION,
    RemoteConfigError,
    RemoteTarget,
    ServerNotReadyError,
    StatusCallback,
    configure,
    model_key_for,
    resolve_remote,
    status_backend,
    trace_kwargs,
    wait_until_ready,
)

__all__ = [
    "ENV_API_KEY",
    "ENV_HOST",
    "LOCAL_SIMULATION",
    "RemoteConfigError",
    "RemoteTarget",
    "ServerNotReadyError",
    "StatusCallback",
    "configure",
    "model_key_for",
    "resolve_remote",
    "status_backend",
    "trace_kwargs",
    "wait_until_ready",
]
