"""Checkpoint folders (save/load, refusal of pickles and corrupt files) and Hub resolution via a fake Hub."""

from __future__ import annotations

import json
import logging
import time

import pytest
import safetensors.torch
import torch

from diffusion_core.files.hub import (
    CheckpointError,
    load_checkpoint,
    parse_repo_ref,
    resolve_checkpoint,
    save_checkpoint,
)
from tests.fake_hub import commit_for, serve_fake_hub, silent_endpoint, unused_port, use_fake_hub

CONFIG = {"model": {"channels": 8, "depth": 2}, "diffusion": {"T": 100}, "labels": ["a", "b"], "dataset": "spiral"}


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w32": torch.randn(4, 3, generator=g),
        "w16": torch.randn(5, generator=g).half(),
        "wbf16": torch.randn(2, 2, generator=g).bfloat16(),
        "steps": torch.arange(6, dtype=torch.int64),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "t_view": torch.randn(3, 4, generator=g).t(),  # non-contiguous
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].device.type == "cpu", k
        assert torch.equal(a[k], b[k]), k


@pytest.fixture
def ckpt_dir(tmp_path):
    return save_checkpoint(tmp_path / "ckpt", _state(), CONFIG, card="# Spiral\n")


# --- local folders ---------------------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact(ckpt_dir):
    ckpt = load_checkpoint(ckpt_dir)
    _assert_same(_state(), ckpt.state_dict)
    assert ckpt.config == CONFIG
    assert ckpt.path == ckpt_dir and ckpt.source == f"local path {ckpt_dir}"
    assert (ckpt_dir / "README.md").read_text() == "# Spiral\n"
    text = (ckpt_dir / "config.json").read_text()
    assert text == json.dumps(CONFIG, indent=2, sort_keys=True) + "\n"
    with safetensors.safe_open(ckpt_dir / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_save_handles_tied_weights_and_no_card(tmp_path):
    w = torch.randn(3, 3)
    folder = save_checkpoint(tmp_path / "tied", {"a": w, "b": w}, {"x": 1})
    sd = load_checkpoint(folder).state_dict
    assert torch.equal(sd["a"], w) and torch.equal(sd["b"], w)
    assert not (folder / "README.md").exists()


def test_torch_save_file_is_refused_as_pickle(tmp_path, ckpt_dir):
    torch.save(_state(), ckpt_dir / "model.safetensors")  # zip-based torch.save
    with pytest.raises(CheckpointError, match="pickle-based.*refuse to unpickle") as err:
        load_checkpoint(ckpt_dir)
    assert str(ckpt_dir / "model.safetensors") in str(err.value)
    torch.save(_state(), ckpt_dir / "model.safetensors", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="pickle-based"):
        load_checkpoint(ckpt_dir)


def test_pytorch_model_bin_only_folder_is_refused(ckpt_dir):
    (ckpt_dir / "model.safetensors").unlink()
    torch.save(_state(), ckpt_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin is a pickle-based file"):
        load_checkpoint(ckpt_dir)


@pytest.mark.parametrize("where", ["tensor data", "header", "length prefix"])
def test_truncated_safetensors_is_refused_naming_the_file(ckpt_dir, where):
    path = ckpt_dir / "model.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    cut = {"tensor data": 8 + n + (len(data) - 8 - n) // 2, "header": 8 + n // 2, "length prefix": 5}[where]
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(ckpt_dir)
    msg = str(err.value)
    assert str(path) in msg
    if where == "tensor data":
        assert f"header says {len(data) - 8 - n} bytes of tensors but file has {cut - 8 - n}" in msg
    elif where == "header":
        assert f"header says {n} bytes of JSON header" in msg


def test_garbage_safetensors_is_refused(ckpt_dir):
    (ckpt_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!" + b"x" * 32)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(ckpt_dir)


def test_missing_files_and_bad_json_are_named(tmp_path, ckpt_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (ckpt_dir / "config.json").write_text('{"model": {"channels": 8,}}')
    with pytest.raises(CheckpointError, match=r"config.json: invalid JSON: .* line 1 column 26"):
        load_checkpoint(ckpt_dir)
    (ckpt_dir / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="config.json: must hold a JSON object"):
        load_checkpoint(ckpt_dir)
    (ckpt_dir / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(ckpt_dir)
    save_checkpoint(ckpt_dir, _state(), CONFIG)
    (ckpt_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_checkpoint(ckpt_dir)


def test_failed_save_leaves_existing_checkpoint_intact(ckpt_dir, monkeypatch):
    before = {p.name: p.read_bytes() for p in ckpt_dir.iterdir()}

    def half_write_then_fail(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write_then_fail)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(ckpt_dir, _state(1), {"other": True}, card="new card")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="'bad'"):
        save_checkpoint(ckpt_dir, {"bad": [1, 2]}, {"other": True})
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(ckpt_dir, _state(1), {"other": object()})
    assert {p.name: p.read_bytes() for p in ckpt_dir.iterdir()} == before  # no temp files left either
    _assert_same(_state(), load_checkpoint(ckpt_dir).state_dict)


def test_parse_repo_ref():
    assert parse_repo_ref("org/digits") == ("org/digits", None)
    assert parse_repo_ref("org/digits@v1.0") == ("org/digits", "v1.0")
    for name in ["digits", "./org/digits", "/abs/path", "a/b/c", "org/.."]:
        assert parse_repo_ref(name) is None, name


# --- Hub resolution --------------------------------------------------------------------------


@pytest.fixture
def hub_folders(tmp_path):
    v1 = save_checkpoint(tmp_path / "hub_v1", _state(1), {**CONFIG, "version": 1}, card="v1")
    v2 = save_checkpoint(tmp_path / "hub_v2", _state(2), {**CONFIG, "version": 2})  # no card
    shipped = save_checkpoint(tmp_path / "shipped", _state(0), {**CONFIG, "version": 0})
    return v1, v2, shipped


def test_resolve_downloads_pinned_revision(tmp_path, monkeypatch, hub_folders):
    v1, v2, shipped = hub_folders
    with serve_fake_hub({"org/digits": {"v1": v1, "main": v2}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        ckpt = resolve_checkpoint("digits", repo_id="org/digits", revision="v1", fallback=shipped)
        assert ckpt.source == "Hub org/digits@v1"
        assert ckpt.config["version"] == 1
        _assert_same(_state(1), ckpt.state_dict)
        assert ckpt.path.is_relative_to(tmp_path / "hf" / "hub")
        assert ckpt.path.name == commit_for("org/digits", "v1")
        assert (ckpt.path / "README.md").read_text() == "v1"
        assert hub.revisions_requested("org/digits") == {"v1"}
        assert {f for m, _, _, f in hub.requests if m == "GET"} == {"config.json", "model.safetensors", "README.md"}

        # owner/name@revision as the name itself; a repo without README.md still loads
        ckpt = resolve_checkpoint("org/digits@main")
        assert ckpt.source == "Hub org/digits@main" and ckpt.config["version"] == 2


def test_wrong_revision_or_repo_fails_cleanly_or_falls_back(tmp_path, monkeypatch, caplog, hub_folders):
    v1, _, shipped = hub_folders
    with serve_fake_hub({"org/digits": {"v1": v1}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        with pytest.raises(CheckpointError, match=r"org/digits@nope.*revision 'nope' not found"):
            resolve_checkpoint("org/digits@nope")
        with pytest.raises(CheckpointError, match=r"org/missing@v1.*repository not found"):
            resolve_checkpoint("org/missing", revision="v1")
        caplog.set_level(logging.INFO)
        ckpt = resolve_checkpoint("digits", repo_id="org/digits", revision="nope", fallback=shipped)
    assert ckpt.source == f"shipped copy {shipped} (Hub download failed)"
    assert ckpt.config["version"] == 0
    records = [r for r in caplog.records if r.name == "diffusion_core"]
    assert len(records) == 1 and "revision 'nope' not found" in records[0].getMessage()


def test_missing_weights_on_hub_is_named(tmp_path, monkeypatch, hub_folders):
    v1, _, _ = hub_folders
    (v1 / "model.safetensors").unlink()
    with serve_fake_hub({"org/digits": {"v1": v1}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        with pytest.raises(CheckpointError, match="model.safetensors: file not found in the repo"):
            resolve_checkpoint("org/digits@v1")


@pytest.mark.parametrize("mode", ["closed port", "HF_HUB_OFFLINE", "silent server"])
def test_offline_falls_back_fast_with_one_log_line(tmp_path, monkeypatch, caplog, hub_folders, mode):
    _, _, shipped = hub_folders
    caplog.set_level(logging.DEBUG)
    with silent_endpoint() as silent:
        endpoint = silent if mode == "silent server" else f"http://127.0.0.1:{unused_port()}"
        use_fake_hub(monkeypatch, endpoint, tmp_path / "hf", offline=mode == "HF_HUB_OFFLINE")
        start = time.monotonic()
        ckpt = resolve_checkpoint("digits", repo_id="org/digits", revision="v1", fallback=shipped, timeout=1.0)
        assert time.monotonic() - start < 5  # must not hang on huggingface_hub's retries
    assert ckpt.config["version"] == 0 and ckpt.path == shipped
    assert ckpt.source.startswith(f"shipped copy {shipped} (Hub ")
    ours = [r for r in caplog.records if r.name == "diffusion_core"]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING
    msg = ours[0].getMessage()
    assert "\n" not in msg and "org/digits@v1" in msg and str(shipped) in msg
    expected = {"closed port": "unreachable", "HF_HUB_OFFLINE": "HF_HUB_OFFLINE", "silent server": "did not answer"}
    assert expected[mode] in msg
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "diffusion_core"]
    if mode != "silent server":
        with pytest.raises(CheckpointError, match="org/digits@v1.*no fallback folder"):
            resolve_checkpoint("org/digits@v1")


def test_offline_uses_hub_cache_when_present(tmp_path, monkeypatch, hub_folders):
    v1, _, shipped = hub_folders
    with serve_fake_hub({"org/digits": {"v1": v1}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        resolve_checkpoint("org/digits@v1")  # fills the cache
    for offline in (False, True):  # server now gone: unreachable, then HF_HUB_OFFLINE
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf", offline=offline)
        ckpt = resolve_checkpoint("digits", repo_id="org/digits", revision="v1", fallback=shipped)
        assert ckpt.config["version"] == 1
        assert ckpt.source.startswith("Hub org/digits@v1 (cached; Hub ")


def test_hub_outage_uses_cache_then_fallback(tmp_path, monkeypatch, caplog, hub_folders):
    v1, _, shipped = hub_folders
    with serve_fake_hub({"org/digits": {"v1": v1}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        hub.outage = 503
        caplog.set_level(logging.INFO)
        start = time.monotonic()
        ckpt = resolve_checkpoint("org/digits@v1", fallback=shipped)
        assert time.monotonic() - start < 5  # no retry storm on 5xx
        assert ckpt.config["version"] == 0 and "503" in caplog.records[-1].getMessage()
        hub.outage = None
        resolve_checkpoint("org/digits@v1")  # fills the cache
        hub.outage = 500
        assert resolve_checkpoint("org/digits@v1", fallback=shipped).config["version"] == 1


def test_local_path_beats_hub(tmp_path, monkeypatch, hub_folders):
    v1, _, shipped = hub_folders
    local = save_checkpoint(tmp_path / "org" / "digits", _state(3), {**CONFIG, "version": 3})
    monkeypatch.chdir(tmp_path)
    with serve_fake_hub({"org/digits": {"v1": v1}}) as hub:
        use_fake_hub(monkeypatch, hub.endpoint, tmp_path / "hf")
        ckpt = resolve_checkpoint("org/digits", repo_id="org/digits", revision="v1", fallback=shipped)
        assert ckpt.config["version"] == 3 and ckpt.source == "local path org/digits"
        ckpt = resolve_checkpoint(str(local), revision="v1")
        assert ckpt.config["version"] == 3
    assert hub.requests == []


def test_corrupt_local_path_is_an_error_not_a_fallback(tmp_path, ckpt_dir, hub_folders):
    (ckpt_dir / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="too short"):
        resolve_checkpoint(str(ckpt_dir), fallback=hub_folders[2])
    with pytest.raises(CheckpointError, match="neither a local folder nor a Hub repo id"):
        resolve_checkpoint("no-such-model")
    ckpt = resolve_checkpoint("no-such-model", fallback=hub_folders[2])
    assert ckpt.source == f"shipped copy {hub_folders[2]}"
