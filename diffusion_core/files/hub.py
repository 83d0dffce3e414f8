"""Resolve a model name to a checkpoint: local folder -> Hub repo at a pinned revision -> shipped copy.

The Hub is reached with `huggingface_hub.hf_hub_download`, one file at a time. `HF_ENDPOINT`,
`HF_HUB_OFFLINE`, `HF_HOME` and `HF_HUB_CACHE` are read here at call time (huggingface_hub reads
them once, at import). Before any download the endpoint gets a TCP probe of `timeout` seconds,
and one HEAD of config.json without retries, because huggingface_hub's own retries take over
20 s on a machine with no network (and minutes on an endpoint that accepts but never answers).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .checkpoint import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_safetensors,
    save_checkpoint,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "hub_endpoint",
    "load_checkpoint",
    "parse_repo_ref",
    "read_safetensors",
    "resolve_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger("diffusion_core")

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name, as on the Hub
_TRUE = {"1", "ON", "YES", "TRUE"}


def parse_repo_ref(name: str) -> tuple[str, str | None] | None:
    """Split `owner/name[@revision]` into (repo_id, revision); None if it is not a repo id."""
    repo_id, _, revision = name.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith("."):
        return None
    return repo_id, revision or None


def hub_endpoint() -> str:
    """The Hub URL: `HF_ENDPOINT` as set now, else huggingface_hub's default."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` as set now, or as huggingface_hub saw it at import."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE or constants.HF_HUB_OFFLINE


def hub_cache_dir() -> str:
    """`HF_HUB_CACHE`, else `HF_HOME/hub`, as set now; else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return constants.HF_HUB_CACHE


def _proxy_address(scheme: str, host: str) -> tuple[str, int] | None:
    """The (host, port) of the proxy the HTTP client would use for this host, if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port or 80) if parts.hostname else None


def probe_endpoint(endpoint: str, timeout: float) -> str | None:
    """TCP-connect to the endpoint (or its proxy) within `timeout` s; None if it works, else why not."""
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return f"bad endpoint URL {endpoint!r}"
    address = _proxy_address(parts.scheme, parts.hostname) or (
        parts.hostname,
        parts.port or (443 if parts.scheme == "https" else 80),
    )
    outcome: list[str | None] = []

    def connect() -> None:  # in a thread, so a slow DNS lookup cannot outlast `timeout` either
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=connect, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    where = f"{address[0]}:{address[1]}"
    if not outcome:
        return f"endpoint {endpoint} unreachable: no TCP connection to {where} within {timeout:g} s"
    return outcome[0] and f"endpoint {endpoint} unreachable: cannot connect to {where} ({outcome[0]})"


def _why(error: Exception, revision: str | None, endpoint: str, local_only: bool) -> str:
    """One line saying why a hf_hub_download call failed."""
    if isinstance(error, RevisionNotFoundError):
        return f"revision {revision or 'main'!r} not found on {endpoint}"
    if isinstance(error, RepositoryNotFoundError):
        return f"repository not found on {endpoint} (or it is private/gated)"
    if isinstance(error, LocalEntryNotFoundError) and local_only:
        return f"not in the local Hub cache {hub_cache_dir()}"
    if isinstance(error, EntryNotFoundError):
        return f"file not found in the repo on {endpoint}"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _download(repo_id: str, revision: str | None, local_only: bool, timeout: float) -> Path:
    """Fetch config.json, model.safetensors and (if present) README.md; return their snapshot folder."""
    endpoint = hub_endpoint()
    kwargs = dict(
        repo_id=repo_id,
        revision=revision,
        endpoint=endpoint,
        cache_dir=hub_cache_dir(),
        local_files_only=local_only,
        etag_timeout=timeout,
    )
    folder = None
    for filename in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
        try:
            folder = Path(hf_hub_download(filename=filename, **kwargs)).parent
        except EntryNotFoundError as e:
            if filename != CARD_NAME:  # the model card is optional
                raise CheckpointError(f"{filename}: {_why(e, revision, endpoint, local_only)}") from None
        except Exception as e:  # network and HTTP errors come in many types
            raise CheckpointError(f"{filename}: {_why(e, revision, endpoint, local_only)}") from e
    return folder


def check_hub(repo_id: str, revision: str | None, timeout: float) -> tuple[str | None, bool]:
    """HEAD config.json once, with no retries; return (why it failed, whether the cache may serve)."""
    endpoint = hub_endpoint()
    url = hf_hub_url(repo_id, CONFIG_NAME, revision=revision, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        busy = status in (0, 408, 429) or status >= 500  # server trouble, not a wrong name or revision
        return f"{CONFIG_NAME}: {_why(e, revision, endpoint, False)}", busy
    except Exception as e:  # timeouts and connection errors come in many types
        return f"endpoint {endpoint} did not answer: {_why(e, revision, endpoint, False)}", True
    return None, False


def _from_hub(repo_id: str, revision: str | None, timeout: float) -> tuple[Checkpoint | None, str, str]:
    """Try the Hub (or its cache when offline); return (checkpoint or None, why not, short tag)."""
    label = f"{repo_id}@{revision or 'main'}"
    offline = hub_offline()
    why = "HF_HUB_OFFLINE is set" if offline else probe_endpoint(hub_endpoint(), timeout)
    use_cache = why is not None  # no network: huggingface_hub may still serve its cache
    if why is None:
        why, use_cache = check_hub(repo_id, revision, timeout)
        if why is not None and not use_cache:
            return None, why, "Hub download failed"
    tag = "Hub offline" if offline else "Hub unreachable" if use_cache else "Hub download failed"
    try:
        ckpt = load_checkpoint(_download(repo_id, revision, use_cache, timeout))
    except CheckpointError as e:
        return None, f"{why}; {e}" if why else str(e), tag
    if use_cache:
        logger.info("Using cached Hub checkpoint %s (%s)", label, why)
        return replace(ckpt, source=f"Hub {label} (cached; {tag})"), "", tag
    return replace(ckpt, source=f"Hub {label}"), "", tag


def resolve_checkpoint(
    name_or_path: str,
    repo_id: str | None = None,
    revision: str | None = None,
    fallback: str | Path | None = None,
    timeout: float = 2.0,
) -> Checkpoint:
    """Find a checkpoint: existing local folder -> Hub `repo_id`@`revision` -> the `fallback` folder."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return load_checkpoint(local)
    ref = parse_repo_ref(name_or_path) if repo_id is None else None
    if ref is not None:
        repo_id, revision = ref[0], ref[1] or revision
    if repo_id is None:
        if fallback is None:
            raise CheckpointError(
                f"{name_or_path!r} is neither a local folder nor a Hub repo id (owner/name[@revision])"
            )
        return replace(load_checkpoint(fallback), source=f"shipped copy {fallback}")
    label = f"{repo_id}@{revision or 'main'}"
    ckpt, why, tag = _from_hub(repo_id, revision, timeout)
    if ckpt is not None:
        return ckpt
    if fallback is None:
        raise CheckpointError(
            f"cannot get checkpoint {label} from the Hub ({why}), "
            f"{name_or_path!r} is not a local folder, and no fallback folder was given"
        )
    logger.warning("Hub checkpoint %s unavailable (%s); using shipped copy %s", label, why, fallback)
    return replace(load_checkpoint(fallback), source=f"shipped copy {fallback} ({tag})")
