"""Client side of remote execution: where to send traces, with which API key, and whether the server is up.

The toolkit's traces take ``remote=`` exactly as nnsight does. This module turns what the user gave
(``--remote URL``, env ``NDIF_HOST`` / ``NDIF_API_KEY``) into that value:

* ``None``/empty and no ``NDIF_HOST``  -> run locally (``remote=False``)
* ``"local"``                          -> nnsight's local simulation: serialise, deserialise with the user's
                                          modules hidden, run in this process (what CI uses; no server)
* ``"http(s)://host[:port]"``          -> that NDIF server

Only ``ndif``-free imports here: the client never needs the server packages.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ..errors import SteerAudioError

logger = logging.getLogger(__name__)

ENV_HOST = "NDIF_HOST"
ENV_API_KEY = "NDIF_API_KEY"
#: the ``remote`` value that selects nnsight's in-process serialisation round trip
LOCAL_SIMULATION = "local"


class RemoteConfigError(SteerAudioError):
    """The remote target given by the user cannot be used (bad URL, ...)."""


class ServerNotReadyError(SteerAudioError):
    """The NDIF server did not become ready in time."""


@dataclass(frozen=True)
class RemoteTarget:
    """Where traces run. ``url`` is None for local runs, ``"local"`` for the simulation, else the server URL."""

    url: str | None = None
    api_key: str | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def is_server(self) -> bool:
        return self.url is not None and self.url != LOCAL_SIMULATION

    @property
    def trace_arg(self) -> bool | str:
        """The value for ``model.trace(..., remote=...)``: False, ``"local"`` or the server URL."""
        return self.url if self.url is not None else False

    def describe(self) -> dict[str, Any]:
        """For run metadata (meta.json): the URL and whether a key was used, never the key itself."""
        return {"remote": self.url, "api_key_set": bool(self.api_key)}


def _normalise_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if url == LOCAL_SIMULATION:
        return url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise RemoteConfigError(
            f"--remote {value!r} is not a server URL: use http://HOST:PORT (e.g. http://127.0.0.1:8001), "
            f"or 'local' to run nnsight's serialisation round trip in this process"
        )
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise RemoteConfigError(f"--remote {value!r}: give the server root URL only (no path or query)")
    return url


def resolve_remote(
    remote: str | bool | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoteTarget:
    """Resolve the remote target from explicit arguments, falling back to ``NDIF_HOST`` / ``NDIF_API_KEY``.

    ``remote=False`` forces a local run even when ``NDIF_HOST`` is set; ``remote=None`` defers to the
    environment; ``remote=True`` requires ``NDIF_HOST``.
    """
    env = os.environ if environ is None else environ
    key = api_key or env.get(ENV_API_KEY) or None
    if remote is False:
        return RemoteTarget(None, None)
    if remote is None or remote is True or remote == "":
        host = env.get(ENV_HOST, "").strip()
        if not host:
            if remote is True:
                raise RemoteConfigError(f"remote execution requested but {ENV_HOST} is not set")
            return RemoteTarget(None, None)
        remote = host
    url = _normalise_url(str(remote))
    if url == LOCAL_SIMULATION:
        return RemoteTarget(url, None)
    if key is None:
        logger.info(
            "no %s set: requests to %s carry no API key (fine for a server without a key database)",
            ENV_API_KEY,
            url,
        )
    return RemoteTarget(url, key)


def configure(target: RemoteTarget, show_status: bool = False) -> None:
    """Point nnsight's global config at ``target`` (host and API key).

    ``show_status``: nnsight's own status line (RECEIVED / QUEUED / RUNNING ...) is written to **stdout**; the
    toolkit keeps stdout for results, so it is off unless asked for. Use `wait_until_ready` and the toolkit's
    progress bar (stderr) instead.
    """
    from nnsight import CONFIG

    if target.is_server and target.url is not None:
        CONFIG.API.HOST = target.url
        CONFIG.API.APIKEY = target.api_key
    CONFIG.APP.REMOTE_LOGGING = show_status


def _get(url: str, api_key: str | None, timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"ndif-api-key": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (URL validated above)
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def server_state(target: RemoteTarget, timeout: float = 5.0) -> str:
    """One probe: ``"refused"`` (nothing listens on the port), ``"down"`` (no answer), ``"unauthorised"``
    (HTTP 401/403: the API key is missing or wrong), ``"starting"`` (API up, compute backend not yet
    connected), ``"ready"``."""
    if not target.is_server:
        return "ready"
    try:
        code, _ = _get(f"{target.url}/connected", target.api_key, timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        return "refused" if isinstance(reason, ConnectionRefusedError) else "down"
    if code in (401, 403):
        return "unauthorised"
    return "ready" if code == 200 else "starting"


def wait_until_ready(
    target: RemoteTarget,
    timeout: float = 180.0,
    interval: float = 1.0,
    refused_grace: float | None = None,
    report_every: float = 10.0,
) -> float:
    """Block until the server answers ``/connected`` (API up *and* its dispatcher connected to Ray).

    Returns the seconds waited. Before that, NDIF answers requests with HTTP 503. The state is logged
    (stderr) when it changes and every ``report_every`` seconds. Raises `ServerNotReadyError` after
    ``timeout`` seconds, naming the last state seen; at once on a rejected API key; and, with
    ``refused_grace``, once the port has refused connections for that many seconds (nothing listens there).
    """
    t0 = time.monotonic()
    state, last, last_report = "down", None, 0.0
    while True:
        state = server_state(target)
        waited = time.monotonic() - t0
        if state == "ready":
            return waited
        if state != last or waited - last_report >= report_every:
            logger.info("NDIF server %s: %s (waited %.0f s of %.0f s)", target.url, state, waited, timeout)
            last, last_report = state, waited
        if state == "unauthorised":
            raise ServerNotReadyError(
                f"NDIF server {target.url} rejected the API key: set {ENV_API_KEY} to a key from its key "
                "database (deploy/ndif/keys.sh)"
            )
        if state == "refused" and refused_grace is not None and waited >= refused_grace:
            raise ServerNotReadyError(
                f"--remote {target.url}: connection refused (nothing listens on that port); start the server "
                "(deploy/ndif/start.sh) or fix the URL"
            )
        if waited > timeout:
            raise ServerNotReadyError(
                f"NDIF server {target.url} not ready after {timeout:.0f} s (last state: {state}). "
                "Is it started (deploy/ndif/start.sh) and is this process in its network namespace?"
            )
        time.sleep(interval)


def server_models(target: RemoteTarget, timeout: float = 30.0) -> dict[str, Any]:
    """The server's ``/status`` (deployed models and their state), as JSON."""
    if not target.is_server:
        raise RemoteConfigError("server_models needs a server URL")
    code, body = _get(f"{target.url}/status", target.api_key, timeout)
    if code != 200:
        raise ServerNotReadyError(f"{target.url}/status answered HTTP {code}: {body[:200]!r}")
    return json.loads(body)


#: called with (status name, server's description) for every status update of a remote request, e.g.
#: ("QUEUED", "Added to Queue at position 2"), ("DEPLOYING", ...), ("RUNNING", ...), ("COMPLETED", ...)
StatusCallback = Callable[[str, str], None]


def status_backend(lm: Any, target: RemoteTarget, on_status: StatusCallback | None = None) -> Any:
    """An nnsight `RemoteBackend` for ``lm`` on ``target`` that reports each status update to ``on_status``
    (e.g. to show queue state in the toolkit's progress bar on stderr) instead of printing to stdout."""
    if not target.is_server or target.url is None:
        raise RemoteConfigError("status_backend needs a server URL")
    from nnsight.intervention.backends.remote import RemoteBackend

    class _StatusBackend(RemoteBackend):
        def note(self, response: Any) -> bool:
            if on_status is not None and response.status.name != "LOG":
                on_status(response.status.name, response.description)
            return super().note(response)

    backend = _StatusBackend(
        lm.to_model_key(), host=target.url, api_key=target.api_key, env=lm._remoteable_get_env()
    )
    backend.display.enabled = False  # nnsight's own status line would go to stdout
    return backend


def trace_kwargs(lm: Any, target: RemoteTarget, on_status: StatusCallback | None = None) -> dict[str, Any]:
    """Keyword arguments for ``lm.trace(...)``: ``{}`` (local), ``{"remote": "local"}`` (round-trip simulation)
    or ``{"backend": ...}`` (a server, with status updates sent to ``on_status``). A fresh backend per trace."""
    if not target.enabled:
        return {}
    if not target.is_server:
        return {"remote": LOCAL_SIMULATION}
    return {"backend": status_backend(lm, target, on_status)}


def model_key_for(model: str, revision: str | None = None) -> str:
    """The full NDIF model key a client will send for ``--model`` (and ``--revision``), computed offline without
    building the model: what a server operator puts in ``NDIF_DEPLOYMENTS`` to deploy it at start."""
    from nnsight.util import to_import_path

    from ..models import registry
    from ..models.wrapper import AudioLM

    spec = registry.resolve_spec(model, revision=revision)
    return f"{to_import_path(AudioLM)}:{json.dumps(spec, sort_keys=True)}"
