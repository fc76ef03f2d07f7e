"""benchmarks: the real-model rows (Silero VAD from its wheel) join the quantization table
without losing the rows of the last full run."""

from __future__ import annotations

import pandas as pd

from benchmarks import __main__ as cli


def test_pretrained_rows_merge_into_the_quantization_table(tmp_path, capsys):
    kept = pd.DataFrame([{"model": "digits MLP", "variant": "float32", "median_ms": 0.01}])
    kept.to_csv(tmp_path / "quantization.csv", index=False)
    assert cli.main(["--only", "pretrained", "--repeat", "3", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "quantization.csv")
    assert "digits MLP" in set(table["model"]), "the last full run's digits row was dropped"
    silero = table[table["model"].str.startswith("silero-vad")]
    variants = set(silero["variant"])
    assert variants == {"float32", "dynamic int8", "static int8 (QDQ)", "float16"}, variants
    fp32 = silero[silero["variant"] == "float32"].iloc[0]
    assert fp32["decisions_agree_vs_fp32"] == 1 and fp32["size_ratio_vs_fp32"] == 1, fp32
    assert silero["accuracy"].between(0, 1).all(), silero["accuracy"].tolist()
    assert (silero["median_ms"] > 0).all(), silero["median_ms"].tolist()
    # int8 stores the Conv weights in a quarter of the bytes: the file shrinks
    int8 = silero[silero["variant"] == "dynamic int8"].iloc[0]
    assert int8["size_ratio_vs_fp32"] > 1.2, f"expected a smaller int8 file, got {int8}"
    assert "silero-vad" in (tmp_path / "quantization.md").read_text()
