"""``python -m benchmarks [--repeat N] [--only runtime|quantization|encoder|pretrained] [--out DIR]``.

``quantization`` writes the digits rows, Silero VAD's rows and the encoder's rows into one table;
``encoder`` and ``pretrained`` run their rows alone and merge them into that table (the other
rows already there stay).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import inference

QUANTIZATION_TITLE = (
    "float32 versus dynamic int8, static int8, int4 and float16 "
    "(digits MLP and CNN, Silero VAD, and a transformer encoder)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per candidate")
    parser.add_argument(
        "--only", choices=["runtime", "quantization", "encoder", "pretrained"], help="run one study"
    )
    parser.add_argument("--out", type=Path, default=inference.RESULTS, help="results folder")
    args = parser.parse_args(argv)
    studies = {
        "runtime": (
            inference.runtime_vs_eager,
            "runtime_vs_eager",
            "ONNX Runtime versus PyTorch eager (digits MLP and CNN)",
        ),
        "quantization": (
            inference.quantization_with_encoder,
            "quantization",
            QUANTIZATION_TITLE,
        ),
        "encoder": (inference.encoder_study, "quantization", QUANTIZATION_TITLE),
        "pretrained": (inference.pretrained_study, "quantization", QUANTIZATION_TITLE),
    }
    # study -> its rows' model prefixes
    partial = {"encoder": ("encoder",), "pretrained": ("silero", "magika")}
    for key, (study, name, title) in studies.items():
        if (args.only and key != args.only) or (not args.only and key in partial):
            continue
        frame = study(repeat=args.repeat)
        if key in partial:  # keep the other rows of the last full run
            frame = inference.merge_rows(args.out / f"{name}.csv", frame, partial[key])
        path = inference.write_results(frame, name, title, args.out)
        print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
