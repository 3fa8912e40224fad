"""Uploads on a provider's disk: streamed into a file and digested as they arrive, bounded in
count and bytes on disk (evicting deletes the file), nothing left behind by a bad or refused
upload, and a file changed on disk refused at job start by the root check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.verde.protocol.conftest import key
from tests.verde.protocol.init_jobs import init_spec, perturbed_state
from verde.protocol.jobs.context import PARAM
from verde.protocol.jobs.datasets import Dataset
from verde.protocol.jobs.errors import DatasetError, JobSpecError
from verde.protocol.jobs.uploaded_datasets import dataset_upload, uploaded_datasets
from verde.protocol.peers.state import state_root_hex
from verde.protocol.provider.errors import InvalidUpload, StateTooLarge, StoredUploadDamaged
from verde.protocol.provider.provider import Provider
from verde.protocol.provider.upload_file import entries_of, tensor_bytes
from verde.protocol.provider.uploads import StateStore


def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _pieces(state: dict[str, torch.Tensor], size: int) -> Iterator[bytes]:
    """The state's bytes re-cut into pieces of ``size`` (elements split across pieces)."""
    data = b"".join(bytes(v) for v in tensor_bytes(state))
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _state(seed: int, n: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(n, 3, generator=gen), "b": torch.randn(3, generator=gen),
            "h": torch.randn(5, generator=gen).to(torch.bfloat16),
            "i": torch.arange(7, dtype=torch.int64), "e": torch.zeros(0)}


def test_streamed_uploads_are_files_with_the_state_root(tmp_path: Path) -> None:
    store = StateStore(directory=tmp_path)
    state = _state(0)
    upload = store.receive(entries_of(state), _pieces(state, 7))
    assert upload.root == state_root_hex(state)
    assert store.keep(upload) == upload.root and _files(tmp_path) == [upload.path]
    assert upload.path.stat().st_size == upload.size == store.nbytes
    loaded = store.get(upload.root)
    assert loaded is not None and list(loaded) == list(state)
    assert all(torch.equal(loaded[n].view(torch.uint8) if n == "h" else loaded[n],
                           state[n].view(torch.uint8) if n == "h" else state[n]) for n in state)
    from safetensors.torch import load_file  # a standard reader sees the same tensors

    standard = load_file(str(upload.path))
    assert torch.equal(standard["w"], state["w"]) and torch.equal(standard["h"], state["h"])
    again = store.receive(entries_of(state), _pieces(state, 1000))
    assert store.keep(again) == upload.root
    assert _files(tmp_path) == [again.path] and store.nbytes == again.size  # one file


def test_a_bad_stream_leaves_no_file_and_loses_nothing(tmp_path: Path) -> None:
    store = StateStore(directory=tmp_path)
    kept = store.put(_state(1))
    before = _files(tmp_path)
    state = _state(2)
    whole = list(_pieces(state, 10))

    def failing() -> Iterator[bytes]:  # a call cancelled or timed out mid-stream
        yield whole[0]
        raise ConnectionError("stream cancelled")

    cases = {"truncated": iter(whole[:-1]), "more bytes": iter([*whole, b"x"])}
    for match, data in cases.items():
        with pytest.raises(InvalidUpload, match=match):
            store.receive(entries_of(state), data)
    with pytest.raises(ConnectionError):
        store.receive(entries_of(state), failing())
    assert _files(tmp_path) == before and kept in store and store.get(kept) is not None


def test_limits_on_bytes_on_disk_and_count_evict_files(tmp_path: Path) -> None:
    one = StateStore(directory=tmp_path / "probe")
    size = one.file(one.put({"w": torch.zeros(4)})).size  # type: ignore[union-attr]
    store = StateStore(max_states=2, max_bytes=2 * size, directory=tmp_path / "s")
    roots = [store.put({"w": torch.full((4,), float(i))}) for i in range(3)]
    assert roots[0] not in store and len(store) == 2 and len(_files(tmp_path / "s")) == 2
    store.get(roots[1])  # used: roots[2] is now the oldest
    bigger = store.put({"w": torch.zeros(6)})  # past the byte bound with both: evicts both
    assert len(store) == 1 and bigger in store
    assert store.nbytes == sum(p.stat().st_size for p in _files(tmp_path / "s"))
    with pytest.raises(StateTooLarge, match=f"limit of {2 * size}"):
        store.put({"w": torch.zeros(1000)})
    assert len(_files(tmp_path / "s")) == 1 and bigger in store  # refused: nothing written
    with pytest.raises(ValueError, match="empty"):
        store.put({})
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        store.put({"w": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="max_states"):
        StateStore(max_states=0)
    source = torch.ones(3, requires_grad=True)
    root = store.put({"w": source})
    with torch.no_grad():
        source.add_(1.0)  # the store kept its own bytes
    assert torch.equal(store.get(root)["w"], torch.ones(3))  # type: ignore[index]


def test_directories_are_cleaned_and_the_default_one_removed(tmp_path: Path) -> None:
    (tmp_path / "upload-k3_x9qa0.part").write_bytes(b"left by a crash")
    (tmp_path / "upload-zz81mmq2.safetensors").write_bytes(b"stored before a crash")
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / "upload-model.safetensors").write_text("an operator's own file")
    theirs = [tmp_path / "notes.txt", tmp_path / "upload-model.safetensors"]
    store = StateStore(directory=tmp_path)
    assert _files(tmp_path) == theirs  # only the names a provider makes are cleared
    store.put(_state(3))
    store.close()
    assert _files(tmp_path) == theirs and tmp_path.is_dir()
    private = StateStore()
    private.put(_state(4))
    made = private.directory
    assert len(_files(made)) == 1
    private.close()
    assert not made.exists()
    with pytest.raises(ValueError, match="upload directory"):
        StateStore(directory=tmp_path / "notes.txt")


def test_a_tampered_file_is_refused_at_job_start(tmp_path: Path) -> None:
    state0 = perturbed_state(0.5)
    provider = Provider(key("disk-tamper"), uploads=StateStore(directory=tmp_path))
    spec = init_spec(state0)
    root = provider.receive_state(entries_of(state0), _pieces(state0, 333))
    assert root == spec.init["root"]
    upload = provider.uploads.file(root)
    assert upload is not None
    data = bytearray(upload.path.read_bytes())
    offset = upload.data_start
    for entry in upload.entries:
        if entry.name.startswith(PARAM):
            break
        offset += entry.nbytes
    data[offset + 1] ^= 1  # same size, one bit of one parameter changed
    upload.path.write_bytes(bytes(data))
    with pytest.raises(JobSpecError, match="root"):
        provider.submit(spec)
    upload.path.write_bytes(bytes(data[:-9]))  # shorter than its index says
    with pytest.raises(StoredUploadDamaged, match="shorter"):
        provider.submit(spec)
    assert not provider.jobs
    provider.receive_state(entries_of(state0), _pieces(state0, 1 << 20))  # uploaded again:
    assert not upload.path.exists()  # the new file replaces the damaged one
    provider.submit(spec)  # and the job runs
    assert provider.jobs[spec.job_id].step_roots[0] == spec.init_root
    provider.close()
    assert _files(tmp_path) == []


def test_a_streamed_dataset_is_kept_mapped_and_its_file_name_removed(tmp_path: Path) -> None:
    provider = Provider(key("disk-data"), uploads=StateStore(directory=tmp_path))
    dataset = Dataset({"x": np.arange(60, dtype=np.float32).reshape(20, 3),
                       "y": np.arange(20, dtype=np.int64) % 2})
    upload = dataset_upload(dataset)
    provider.receive_state(entries_of(upload), _pieces(upload, 50))
    held = uploaded_datasets().get(dataset.root.hex())
    assert held is not None and held.root == dataset.root
    assert np.array_equal(held.sample(3)["x"], dataset.sample(3)["x"])
    assert _files(tmp_path) == []
    ragged = {"dataset/x": torch.zeros(4, 2), "dataset/y": torch.zeros(3)}
    with pytest.raises(DatasetError, match="first axis"):
        provider.receive_state(entries_of(ragged), _pieces(ragged, 50))
    assert _files(tmp_path) == []


def test_a_stored_file_removed_under_the_store_is_one_clear_error(tmp_path: Path) -> None:
    store = StateStore(directory=tmp_path)
    kept, gone = _state(5), _state(6)
    kept_root, gone_root = store.put(kept), store.put(gone)
    before = store.nbytes
    upload = store.file(gone_root)
    assert upload is not None
    upload.path.unlink()  # an operator or a tmp cleaner removed it
    with pytest.raises(StoredUploadDamaged, match=r"cannot be read.*upload it again"):
        store.get(gone_root)
    assert store.file(gone_root) is None and store.nbytes == before - upload.size
    loaded = store.get(kept_root)  # the other upload is untouched
    assert loaded is not None and torch.equal(loaded["w"], kept["w"])
