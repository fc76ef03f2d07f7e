"""``python -m benchmarks [--repeat N] [--only runtime|quantization] [--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import inference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per candidate")
    parser.add_argument("--only", choices=["runtime", "quantization"], help="run one study")
    parser.add_argument("--out", type=Path, default=inference.RESULTS, help="results folder")
    args = parser.parse_args(argv)
    studies = {
        "runtime": (
            inference.runtime_vs_eager,
            "runtime_vs_eager",
            "ONNX Runtime versus PyTorch eager (digits MLP and CNN)",
        ),
        "quantization": (
            inference.quantization_study,
            "quantization",
            "float32 versus dynamic int8, static int8 and float16 (digits MLP and CNN)",
        ),
    }
    for key, (study, name, title) in studies.items():
        if args.only and key != args.only:
            continue
        frame = study(repeat=args.repeat)
        path = inference.write_results(frame, name, title, args.out)
        print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
