"""A small fake Hugging Face Hub for tests: serves checkpoint folders over HTTP on 127.0.0.1.

It answers what `huggingface_hub.hf_hub_download` asks for (huggingface_hub 2.x):
HEAD and GET on `/{repo_id}/resolve/{revision}/{filename}` with `X-Repo-Commit` (40 hex),
`ETag` and `Content-Length`; a 404 carries `X-Error-Code` = `RepoNotFound`,
`RevisionNotFound` or `EntryNotFound`, which huggingface_hub turns into its typed errors.

    with serve_fake_hub({"org/digits": {"v1": folder}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        ...
        assert ("GET", "org/digits", "v1", "model.safetensors") in hub.requests
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def commit_for(repo_id: str, revision: str) -> str:
    """The commit hash the fake Hub reports: the revision itself if it is 40 hex, else a sha1 of it."""
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


@dataclass
class FakeHub:
    """A running fake Hub: its URL, the repos it serves and the requests it has seen."""

    repos: dict[str, dict[str, Path]]  # {repo_id: {revision: folder}}
    endpoint: str = ""
    # (method, repo_id, revision, filename) for every /resolve/ request, in order
    requests: list[tuple[str, str, str, str]] = field(default_factory=list)
    outage: int | None = None  # set to e.g. 503 to answer every request with that status

    def revisions_requested(self, repo_id: str) -> set[str]:
        return {rev for _, repo, rev, _ in self.requests if repo == repo_id}


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
            if len(parts) < 5 or parts[2] != "resolve":
                return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"", body)
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            hub.requests.append((self.command, repo_id, revision, filename))
            if hub.outage is not None:
                return self._send(hub.outage, {}, b"", body)
            if repo_id not in hub.repos:
                return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"", body)
            if revision not in hub.repos[repo_id]:
                return self._send(404, {"X-Error-Code": "RevisionNotFound"}, b"", body)
            commit = commit_for(repo_id, revision)
            path = Path(hub.repos[repo_id][revision]) / filename
            if ".." in filename or not path.is_file():
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
                return self._send(404, headers, b"", body)
            data = path.read_bytes()
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            self._send(200, {"X-Repo-Commit": commit, "ETag": etag}, data, body)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


@contextlib.contextmanager
def serve_fake_hub(repos: dict[str, dict[str, str | Path]]) -> Iterator[FakeHub]:
    """Run a fake Hub on 127.0.0.1:<free port> for the duration of the `with` block."""
    hub = FakeHub({repo: {rev: Path(folder) for rev, folder in revs.items()} for repo, revs in repos.items()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def unused_port() -> int:
    """A localhost TCP port with nothing listening on it (for 'Hub unreachable' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts TCP connections but never answers (a hung Hub or proxy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def use_fake_hub(monkeypatch, endpoint: str, hf_home: str | Path, offline: bool = False) -> None:
    """Point huggingface_hub at `endpoint` with a private cache under `hf_home` (pytest monkeypatch)."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(Path(hf_home) / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # in case it was set at import
