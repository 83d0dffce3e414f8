"""Hostile uploads to the drawing pads, through the API (gradio_client against the app in this process): each is
refused within a second with a message that says what is wrong, and the server's memory peak (VmHWM of
/proc/self/status, reset before each request) rises by under 100 MB."""
from __future__ import annotations

import os
import re
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from tests.test_app_api import running_app

ARGS = ("ddim", 3, 0.0, 1.0, "7", 0, 1, 0.02)  # /digits_sketch after the drawing and t_start


def png(path: Path, width: int, height: int, bit_depth: int = 8, fill: int = 255) -> Path:
    """A grey PNG of width x height pixels of one value, compressed row by row (never held whole in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes([fill]) * -(-width * bit_depth // 8)  # filter type 0, then the row's bytes
    z, parts = zlib.compressobj(9), []
    for start in range(0, height, 256):
        parts.append(z.compress(row * min(256, height - start)))
    parts.append(z.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


def memory_mb(field: str) -> float:
    """VmRSS or VmHWM of this process (the app runs in it) in MB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def refused(send) -> tuple[str, float, float]:
    """Call `send`, which must fail: its message, the seconds it took and the MB the memory peak rose by."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to VmRSS
    before, t0 = memory_mb("VmRSS"), time.perf_counter()
    with pytest.raises((AppError, httpx.HTTPError, ValueError)) as e:
        send()
    return str(e.value), time.perf_counter() - t0, memory_mb("VmHWM") - before


def editor(path: Path | None, key: str = "composite") -> dict:
    """An editor value as the API takes it, with `path` as its composite (or background)."""
    value = {"background": None, "layers": [], "composite": None, "id": None}
    return {**value, key: handle_file(str(path))} if path else value


@pytest.fixture(scope="module")
def url(request, tmp_path_factory):
    """The app, running for this module, after its first event (which pays for starting the queue's workers)."""
    with running_app(request, tmp_path_factory.mktemp("checkpoints")) as u:
        refused(lambda: Client(u, download_files=False, verbose=False).predict(editor(None), 300, *ARGS,
                                                                                api_name="/digits_sketch"))
        yield u


@pytest.fixture(scope="module")
def round_trip(url) -> float:
    """Seconds of a request that uploads and decodes nothing (an empty editor). "At once" is under a second more
    than two of these: a busy machine's slower round trips do not fail the tests, a decoded 144 M pixels (15 s
    before the header check) does."""
    client = Client(url, download_files=False, verbose=False)
    return min(refused(lambda: client.predict(editor(None), 300, *ARGS, api_name="/digits_sketch"))[1]
               for _ in range(2))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The hostile files, made once."""
    d = tmp_path_factory.mktemp("uploads")
    (d / "random.png").write_bytes(os.urandom(200_000))
    (d / "notes.png").write_text("not a picture, only text\n" * 100)
    (d / "large_file.png").write_bytes(os.urandom(6 * 2**20))
    return {"huge": png(d / "huge.png", 12000, 12000),  # the white 12000 x 12000: 144 M pixels
            "bomb": png(d / "bomb.png", 40000, 40000, bit_depth=1, fill=0),  # 1.6 G pixels in ~200 kB
            "wide": png(d / "wide.png", 1025, 8), "random": d / "random.png", "text": d / "notes.png",
            "large_file": d / "large_file.png"}


@pytest.mark.parametrize("name, message", [
    ("huge", r"too large: 12000 x 12000 pixels \(at most 1024 x 1024\)"),
    ("bomb", r"too large: over 178 M pixels \(at most 1024 x 1024\)"),
    ("wide", r"too large: 1025 x 8 pixels"),
    ("random", "not a picture that can be read: upload a PNG, JPEG, WEBP, GIF or BMP image"),
    ("text", "not a picture that can be read"),
    ("large_file", "exceeds the maximum file size of 5242880 bytes"),  # gradio_client checks the app's limit
    (None, "draw a digit on the sketchpad first"),  # an empty editor
])
def test_a_hostile_drawing_is_refused_at_once_with_a_message(url, files, round_trip, name, message):
    client = Client(url, download_files=False, verbose=False)
    text, seconds, extra_mb = refused(lambda: client.predict(editor(files.get(name)), 300, *ARGS,
                                                             api_name="/digits_sketch"))
    assert re.search(message, text), text
    assert seconds < 2 * round_trip + 1 and extra_mb < 100, (seconds, round_trip, extra_mb)


def test_a_file_over_the_limit_is_refused_as_it_arrives(url, files):
    t0 = time.perf_counter()
    big = {"files": ("big.png", files["large_file"].read_bytes())}
    r = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files=big)
    assert r.status_code == 413 and "maximum allowed size" in r.text and time.perf_counter() - t0 < 10, r.text


def test_a_sprite_editor_checks_its_background_too(url, files, round_trip):
    client = Client(url, download_files=False, verbose=False)
    args = ("ddim", 3, 0.0, 3.0, "red", 0, 1, 0.02)
    text, seconds, extra_mb = refused(lambda: client.predict(editor(files["huge"], "background"), 650, *args,
                                                             api_name="/pokemon_sketch"))
    assert "too large: 12000 x 12000 pixels" in text and seconds < 2 * round_trip + 1 and extra_mb < 100


def test_the_spiral_labs_drawing_pad_checks_its_picture_too(url, files, round_trip):
    client = Client(url, download_files=False, verbose=False)
    text, seconds, extra_mb = refused(lambda: client.predict("drawing", "diffusion", 100, 60, editor(files["huge"]),
                                                             "", "", api_name="/spiral_train"))
    assert "too large: 12000 x 12000 pixels" in text and seconds < 2 * round_trip + 1 and extra_mb < 100


def blob(url: str, client: Client, path: Path, index: str = "null") -> httpx.Response:
    """Send a picture to the digits pad as a browser does before its event (the editor's accept_blobs)."""
    (component,) = [c["id"] for c in client.config["components"]
                    if c.get("props", {}).get("elem_id") == "digits-sketch"]
    form = {"component_id": str(component), "session_hash": "blob-test", "fn_name": "accept_blobs",
            "type": "composite", "index": index, "id": "blob-1"}
    return httpx.post(f"{url.rstrip('/')}/gradio_api/component_server", data=form,
                      files={"file": (path.name, path.read_bytes(), "image/png")}, timeout=30)


def test_a_browser_sent_picture_is_checked_before_it_is_decoded(url, files, round_trip):
    client = Client(url, download_files=False, verbose=False)
    assert blob(url, client, files["huge"]).status_code == 200
    value = {"background": None, "layers": [], "composite": None, "id": "blob-1"}
    text, seconds, extra_mb = refused(lambda: client.predict(value, 300, *ARGS, api_name="/digits_sketch"))
    assert "too large: 12000 x 12000 pixels" in text and seconds < 2 * round_trip + 1 and extra_mb < 100
    assert blob(url, client, files["wide"], index=str(10**9)).status_code >= 400  # a layer index to fill memory


def test_a_drawing_at_the_limit_is_still_taken(url, tmp_path):
    img = Image.new("RGBA", (1024, 1024), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(200, 150), (800, 150), (400, 900)], fill="black", width=80)
    img.save(tmp_path / "seven.png")
    client = Client(url, download_files=False, verbose=False)
    Path("/proc/self/clear_refs").write_text("5")
    before = memory_mb("VmRSS")
    *_, status = client.predict(editor(tmp_path / "seven.png"), 300, *ARGS, api_name="/digits_sketch")
    assert "Done in" in status and memory_mb("VmHWM") - before < 100
