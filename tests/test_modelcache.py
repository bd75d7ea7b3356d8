"""rag.modelcache: the lock every maker of a cached model file holds also clears what a killed maker left."""

from __future__ import annotations

from rag.modelcache import exclusive


def test_taking_the_lock_removes_temporary_files_left_by_a_killed_maker(tmp_path) -> None:
    folder = tmp_path / "onnx" / "model-abc"
    folder.mkdir(parents=True)
    made = folder / "model.onnx"
    made.write_bytes(b"kept")
    left = [folder / ".model-4242.raw.onnx", folder / ".model-4242.tmp.onnx", folder / ".m.q8_0-7.tmp.gguf"]
    for path in left:
        path.write_bytes(b"half written")
    with exclusive(folder):
        assert not any(path.exists() for path in left)
        assert made.read_bytes() == b"kept" and (folder / ".lock").exists()
