"""`rstar-pl import-model` refuses bad input in one line, before any slow loading.

(The conversion of a real file is tested in test_real_model.py.)
"""

from __future__ import annotations

import numpy as np

from rstar_pl.cli import main


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_missing_file(tmp_path, capsys):
    line = _error(
        capsys,
        ["import-model", "--gguf", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "out")],
    )
    assert line == (
        f"rstar-pl import-model: error: {tmp_path / 'none.gguf'}: no such file; "
        f"expected a GGUF checkpoint (.gguf)"
    )
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_gguf(tmp_path, capsys):
    (tmp_path / "model.gguf").write_text('{"not": "gguf"}')
    line = _error(
        capsys,
        ["import-model", "--gguf", str(tmp_path / "model.gguf"), "--out", str(tmp_path / "out")],
    )
    assert line.endswith(
        "model.gguf: not a GGUF file (it starts with b'{\"no'; a GGUF file starts with b'GGUF')"
    )


def test_an_architecture_transformers_cannot_dequantize(tmp_path, capsys):
    import gguf

    path = tmp_path / "rwkv.gguf"
    writer = gguf.GGUFWriter(str(path), arch="rwkv6")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    line = _error(capsys, ["import-model", "--gguf", str(path), "--out", str(tmp_path / "out")])
    assert "rwkv.gguf: transformers cannot de-quantize GGUF architecture 'rwkv6'" in line
    supported = line.rpartition("supported: ")[2].split(", ")
    assert "llama" in supported and "qwen2" in supported and "general" not in supported
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    line = _error(
        capsys,
        ["import-model", "--gguf", str(tmp_path / "model.gguf"), "--out", str(tmp_path / "out")],
    )
    assert line.endswith("out: exists and is not an empty folder; choose a new --out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
