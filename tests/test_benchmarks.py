"""benchmarks: the real-model rows (Silero VAD and Magika from their wheels) join the
quantization table without losing the rows of the last full run."""

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
    magika = table[table["model"].str.startswith("magika")]
    assert set(magika["variant"]) == variants, set(magika["variant"])
    fp32 = magika[magika["variant"] == "float32"].iloc[0]
    assert fp32["decisions_agree_vs_fp32"] == 1 and fp32["size_ratio_vs_fp32"] == 1, fp32
    # real files of known type: the float32 model names most of them right
    assert fp32["accuracy"] > 0.6, f"expected most sample files classified right, got {fp32}"
    assert magika["decisions_agree_vs_fp32"].between(0, 1).all(), magika.to_string()
    # Magika's weights are mostly Dense/Conv matrices: int8 stores them in a quarter of the bytes
    int8 = magika[magika["variant"] == "dynamic int8"].iloc[0]
    assert int8["size_ratio_vs_fp32"] > 2.5, f"expected a much smaller int8 file, got {int8}"
