"""`python -m mtf_synth.hf_t5` on damaged input and its output's noise."""

import os
import subprocess
import sys

import pytest

from mtf_synth import hf_t5
from test_hf_t5 import write_random_hf_t5


def test_import_and_export_print_no_gin_search_path_misses(tmp_path):
  write_random_hf_t5(str(tmp_path / "hf"), "v1.1")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  for argv in (["import", str(tmp_path / "hf"), str(tmp_path / "mtf")],
               ["export", str(tmp_path / "mtf"), str(tmp_path / "back")]):
    out = subprocess.run([sys.executable, "-m", "mtf_synth.hf_t5"] + argv,
                         capture_output=True, text=True, timeout=300,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Path not found" not in out.stderr, out.stderr[-3000:]
    assert "ERROR:root" not in out.stderr, out.stderr[-3000:]


def test_truncated_pytorch_bin_is_a_one_line_error(tmp_path, capsys):
  torch = pytest.importorskip("torch")
  hf_dir = tmp_path / "hf"
  weights = write_random_hf_t5(str(hf_dir), "v1.0")
  os.remove(hf_dir / "model.safetensors")
  path = hf_dir / "pytorch_model.bin"
  torch.save({k: torch.tensor(v) for k, v in weights.items()}, str(path))
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(SystemExit) as raised:
    hf_t5.main(["import", str(hf_dir), str(tmp_path / "mtf")])
  assert raised.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1, err
  assert err.startswith("mtf_synth.hf_t5: error: %s cannot be read (" % path)
  assert "give a complete transformers weights file" in err
  assert not (tmp_path / "mtf").exists()
