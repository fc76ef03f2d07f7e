"""Inference benchmarks on the course's models (``python -m benchmarks``).

Two studies on the course's own models (``course.data``: the digits MLP and CNN):

- ``runtime``: ONNX Runtime versus PyTorch eager at batch 1 and 64, interleaved;
- ``quantization``: float32 versus dynamic int8, static int8 (QDQ, per-channel) and float16
  for size, accuracy and latency at batch 1 and 64.

The quantization study also has rows for two real models someone else trained, shipped in their
wheels (``course.pretrained``): Silero VAD (PyTorch; frame accuracy on synthetic speech and
noise, and the agreement of its speech decisions with float32) and Magika's file-type classifier
(Keras, converted by tf2onnx; top-1 accuracy on files whose type their extension gives, and the
agreement of its top-1 type with float32) and for a transformer encoder at realistic width
(``course.text_models``: BERT-base width, four layers, 35.6 M parameters, built offline): float32,
onnxruntime's transformer optimizer, dynamic int8, static int8 (QDQ), weight-only int4 and
float16, at 1 and 8 sequences of 128 tokens, with their agreement with float32 (mean cosine of
the token vectors, largest absolute difference) in place of an accuracy.

Both run each configuration with each library's default threads and with one thread. On a
small shared machine the one-thread rows are the reliable ones: a multi-threaded pool stalls
whenever another process takes one of its cores.

Each writes ``benchmarks/results/<study>.csv`` and ``.md`` with the machine facts (CPU, cores,
CPU features, library versions, threads, load average) next to the numbers. Not part of the
unit tests: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from course import bench, data, quantize

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 64)
THREADS: tuple[int | None, ...] = (None, 1)
MACHINE_COLUMNS = (
    "cpu_model",
    "physical_cores",
    "logical_cores",
    "cpu_features",
    "onnxruntime_version",
    "torch_version",
    "torch_threads",
    "load_average_1min",
)


def _models(split: data.Split, folder: Path) -> dict[str, dict[str, Any]]:
    """The course's MLP and CNN, in PyTorch and exported to ONNX (dynamic batch)."""
    from course import convert

    mlp = data.train_torch_mlp(split)
    cnn = data.train_torch_cnn(split)
    images_test = split.X_test.reshape(-1, 1, 8, 8)
    images_train = split.X_train.reshape(-1, 1, 8, 8)
    out = {}
    for name, module, X_test, X_train in (
        ("MLP", mlp, split.X_test, split.X_train),
        ("CNN", cnn, images_test, images_train),
    ):
        conv = convert.torch_to_onnx(module, X_test[:2], folder / f"{name.lower()}.onnx")
        out[name] = {
            "torch": module,
            "path": conv.path,
            "X_test": X_test,
            "X_train": X_train,
            "params": sum(p.numel() for p in module.parameters()),
        }
    return out


def _machine_row(machine: dict[str, Any]) -> dict[str, Any]:
    return {key: machine.get(key) for key in MACHINE_COLUMNS}


def _set_torch_threads(n: int | None, default: int) -> None:
    import torch

    torch.set_num_threads(default if n is None else n)


def runtime_vs_eager(
    repeat: int = 50, folder: Path | None = None, threads: tuple[int | None, ...] = THREADS
) -> pd.DataFrame:
    """ONNX Runtime (all optimisations) versus PyTorch eager in ``torch.inference_mode()``, per
    model, batch size and thread setting (None: each library's default; 1: one thread each),
    timed interleaved."""
    import torch

    split = data.load_digits_split()
    default_threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(split, Path(folder or tmp))
        try:
            for n_threads in threads:
                _set_torch_threads(n_threads, default_threads)
                for name, m in models.items():
                    session = bench.ort_session(m["path"], intra_op_threads=n_threads)
                    for batch in BATCHES:
                        rows += _eager_rows(name, m, session, batch, n_threads, repeat)
        finally:
            torch.set_num_threads(default_threads)
    return pd.DataFrame(rows)


def _eager_rows(
    name: str, m: dict[str, Any], session: Any, batch: int, n_threads: int | None, repeat: int
) -> list[dict[str, Any]]:
    import torch

    x = bench._tile_batch(m["X_test"], batch)
    xt = torch.from_numpy(x)
    module = m["torch"]

    def eager():
        with torch.inference_mode():
            return module(xt)

    cmp = bench.compare(
        {"pytorch eager": eager, "onnxruntime": bench.session_runner(session, x)},
        repeat=repeat,
        warmup=10,
        warn=False,
    )
    rows = []
    for cand, res in cmp.results.items():
        rows.append(
            {
                "model": name,
                "parameters": m["params"],
                "threads": "default" if n_threads is None else n_threads,
                "batch": batch,
                "runtime": cand,
                "median_ms": res.median * 1e3,
                "ci_low_ms": res.ci_low * 1e3,
                "ci_high_ms": res.ci_high * 1e3,
                "p90_ms": res.p90 * 1e3,
                "p99_ms": res.p99 * 1e3,
                "speedup_vs_eager": cmp.speedup(cand),
                "cis_overlap": cmp.overlap,
                "repeat": res.repeat,
                **_machine_row(res.machine),
            }
        )
    return rows


def quantization_study(
    repeat: int = 50, folder: Path | None = None, threads: tuple[int | None, ...] = THREADS
) -> pd.DataFrame:
    """float32 versus dynamic int8, static int8 (QDQ, per-channel, 200 calibration rows) and
    float16: size, test accuracy, and latency at batch 1 and 64 per onnxruntime thread setting
    (the variants timed interleaved)."""
    split = data.load_digits_split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(folder or tmp)
        models = _models(split, work)
        for name, m in models.items():
            ev = (m["X_test"], split.y_test)
            dyn = quantize.quantize_dynamic_int8(
                m["path"], work / f"{name}.dynamic.onnx", eval_set=ev, latency_repeat=3
            )
            sta = quantize.quantize_static_int8(
                m["path"],
                work / f"{name}.static.onnx",
                m["X_train"][:200],
                per_channel=True,
                eval_set=ev,
                latency_repeat=3,
            )
            half = quantize.to_float16(
                m["path"], work / f"{name}.fp16.onnx", eval_set=ev, latency_repeat=3
            )
            variants = {
                "float32": (m["path"], dyn.size_before, dyn.accuracy_before),
                "dynamic int8": (dyn.path, dyn.size_after, dyn.accuracy_after),
                "static int8 (QDQ)": (sta.path, sta.size_after, sta.accuracy_after),
                "float16": (half.path, half.size_after, half.accuracy_after),
            }
            for n_threads in threads:
                sessions = {
                    k: bench.ort_session(v[0], intra_op_threads=n_threads)
                    for k, v in variants.items()
                }
                for batch in BATCHES:
                    x = bench._tile_batch(m["X_test"], batch)
                    cmp = bench.compare(
                        {k: bench.session_runner(s, x) for k, s in sessions.items()},
                        repeat=repeat,
                        warmup=10,
                        warn=False,
                    )
                    for variant, (_, size, acc) in variants.items():
                        res = cmp[variant]
                        others = [b for a, b in cmp.overlapping if a == variant] + [
                            a for a, b in cmp.overlapping if b == variant
                        ]
                        rows.append(
                            {
                                "model": name,
                                "variant": variant,
                                "threads": "default" if n_threads is None else n_threads,
                                "batch": batch,
                                "size_kb": size / 1024,
                                "size_ratio_vs_fp32": dyn.size_before / size,
                                "accuracy": acc,
                                "median_ms": res.median * 1e3,
                                "ci_low_ms": res.ci_low * 1e3,
                                "ci_high_ms": res.ci_high * 1e3,
                                "speedup_vs_fp32": cmp.speedup(variant),
                                "ci_overlaps_with": ", ".join(others),
                                "repeat": res.repeat,
                                **_machine_row(res.machine),
                            }
                        )
    return pd.DataFrame(rows)


ENCODER_BATCHES = (1, 8)
ENCODER_TOKENS = 128
ENCODER_VARIANTS = {
    "float32": "fp32",
    "optimized (fused)": "optimized",
    "dynamic int8": "int8",
    "static int8 (QDQ)": "qdq",
    "int4 weight-only": "int4",
    "float16": "fp16",
}


def encoder_study(repeat: int = 10, threads: tuple[int | None, ...] = THREADS) -> pd.DataFrame:
    """The encoder's variants (``course.text_models``, built once into the course cache): size,
    agreement with float32 on held sequences, and latency at ``ENCODER_BATCHES`` sequences of
    ``ENCODER_TOKENS`` tokens per onnxruntime thread setting, timed interleaved. A float32 call
    takes tens to hundreds of milliseconds, so ``repeat`` is capped at 20."""
    from course import text_models

    repeat = min(repeat, 20)
    files = text_models.encoder_files()
    paths = {label: files[key] for label, key in ENCODER_VARIANTS.items()}
    held = text_models.sample_inputs(4, 64, seed=11)
    hidden = text_models.outputs_by_variant(held, tuple(ENCODER_VARIANTS.values()))
    agree = {
        label: text_models.agreement(hidden["fp32"], hidden[key], held["attention_mask"])
        for label, key in ENCODER_VARIANTS.items()
    }
    fp32_bytes = paths["float32"].stat().st_size
    params = sum(p.numel() for p in text_models.load_encoder().parameters())
    rows = []
    for n_threads in threads:
        for batch in ENCODER_BATCHES:
            feeds = text_models.sample_inputs(batch, ENCODER_TOKENS, seed=12)
            runners = {
                label: bench.session_runner(
                    bench.ort_session(path, intra_op_threads=n_threads), feeds
                )
                for label, path in paths.items()
            }
            cmp = bench.compare(runners, repeat=repeat, warmup=2, warn=False)
            del runners
            for label, path in paths.items():
                res = cmp[label]
                others = [b for a, b in cmp.overlapping if a == label] + [
                    a for a, b in cmp.overlapping if b == label
                ]
                rows.append(
                    {
                        "model": f"encoder ({params / 1e6:.1f} M, {ENCODER_TOKENS} tokens)",
                        "variant": label,
                        "threads": "default" if n_threads is None else n_threads,
                        "batch": batch,
                        "size_kb": path.stat().st_size / 1024,
                        "size_ratio_vs_fp32": fp32_bytes / path.stat().st_size,
                        "accuracy": float("nan"),
                        "cosine_vs_fp32": agree[label]["cosine_mean"],
                        "max_abs_diff_vs_fp32": agree[label]["max_abs_diff"],
                        **_timing_columns(cmp, label, "float32"),
                        "ci_overlaps_with": ", ".join(others),
                        "repeat": res.repeat,
                        **_machine_row(res.machine),
                    }
                )
    return pd.DataFrame(rows)


SILERO_FILE = "silero_vad_16k_op15.onnx"  # float32, opset 15, 16 kHz (silero-vad's wheel)


def pretrained_study(
    repeat: int = 50, folder: Path | None = None, threads: tuple[int | None, ...] = THREADS
) -> pd.DataFrame:
    """A model someone else trained, shipped in its wheel (Silero VAD, ``course.pretrained``):
    float32 versus dynamic int8, static int8 (QDQ, calibrated on a stream with its state) and
    float16, as lesson 4 section 4.8 builds them: size, frame accuracy on the synthetic speech
    and noise stream, agreement of the speech decisions with float32, and latency per 32 ms chunk
    (one chunk with its state, what a streaming application pays), timed interleaved."""
    from course import pretrained

    if folder is None:  # the variants' files are only needed while they are timed
        with tempfile.TemporaryDirectory(prefix="bench-silero-") as tmp:
            return pretrained_study(repeat, Path(tmp), threads)
    folder = Path(folder)
    fp32 = pretrained.silero_file(SILERO_FILE)
    stream = pretrained.speech_and_noise(seed=0, seconds=1.0)
    truth = stream.frame_labels()
    calib = pretrained.speech_and_noise(seed=100, seconds=0.5)
    _, states = pretrained.vad_onnx(fp32, calib.samples, return_state=True)
    zero_state = np.zeros((2, 1, 128), np.float32)
    sr = np.array(pretrained.SAMPLE_RATE, dtype=np.int64)
    calibration = [
        {"input": window[None], "state": state, "sr": sr}
        for window, state in zip(
            pretrained.windows(calib.samples), [zero_state, *states[:-1]], strict=True
        )
    ]
    paths = {
        "float32": fp32,
        "dynamic int8": quantize.quantize_dynamic_int8(fp32, folder / "vad.dynamic.onnx").path,
        "static int8 (QDQ)": quantize.quantize_static_int8(
            fp32, folder / "vad.static.onnx", calibration, latency_repeat=3
        ).path,
        "float16": quantize.to_float16(fp32, folder / "vad.fp16.onnx").path,
    }
    probs = {label: pretrained.vad_onnx(path, stream.samples) for label, path in paths.items()}
    feed = {"input": pretrained.windows(stream.samples)[:1], "state": zero_state, "sr": sr}
    model = f"silero-vad {_package_version('silero-vad')} ({SILERO_FILE}, 1 chunk of 32 ms)"
    rows = _variant_rows(
        model,
        paths,
        feed,
        threads,
        repeat,
        {
            label: {
                "accuracy": pretrained.frame_accuracy(probs[label], truth),
                "decisions_agree_vs_fp32": float(
                    np.mean((probs[label] > 0.5) == (probs["float32"] > 0.5))
                ),
                "max_abs_diff_vs_fp32": float(np.abs(probs[label] - probs["float32"]).max()),
            }
            for label in paths
        },
    )
    return pd.concat([pd.DataFrame(rows), magika_study(repeat, folder, threads)], ignore_index=True)


#: File extension -> Magika's content type, for the files of :func:`magika_samples`.
MAGIKA_TYPES = {
    "py": "python",
    "json": "json",
    "html": "html",
    "css": "css",
    "js": "javascript",
    "png": "png",
    "svg": "svg",
    "xml": "xml",
    "md": "markdown",
    "toml": "toml",
    "yaml": "yaml",
    "csv": "csv",
    "sh": "shell",
    "txt": "txt",
}


def magika_samples(per_type: int = 8, min_bytes: int = 256) -> list[tuple[str, bytes]]:
    """Real files of known type from the installed packages (``sys.prefix``, the course's pinned
    environment, so the same files on every machine with it): for each extension of
    :data:`MAGIKA_TYPES` the first ``per_type`` files of at least ``min_bytes`` in path order,
    as (expected Magika type, the file's bytes)."""
    import sys
    import sysconfig

    root = Path(sysconfig.get_paths()["purelib"])
    if not root.is_dir():  # pragma: no cover - every venv has one
        root = Path(sys.prefix)
    found: dict[str, list[tuple[str, bytes]]] = {t: [] for t in MAGIKA_TYPES}
    for path in sorted(root.rglob("*.*")):
        ext = path.suffix[1:]
        if ext in found and len(found[ext]) < per_type and path.is_file():
            content = path.read_bytes()
            if len(content) >= min_bytes:
                found[ext].append((MAGIKA_TYPES[ext], content))
        if all(len(v) >= per_type for v in found.values()):
            break
    return [sample for samples in found.values() for sample in samples]


def magika_study(
    repeat: int = 50, folder: Path | None = None, threads: tuple[int | None, ...] = THREADS
) -> pd.DataFrame:
    """Magika's file-type classifier (Keras, converted by tf2onnx, from its wheel): float32 versus
    dynamic int8, static int8 (QDQ, calibrated on half of the sample files) and float16: size,
    top-1 accuracy on the other half (:func:`magika_samples`, the type from the extension),
    agreement of the top-1 type with float32 and the largest probability difference on every
    sample file, and latency per file (one input of 2048 byte values), timed interleaved."""
    from course import pretrained

    if folder is None:  # the variants' files are only needed while they are timed
        with tempfile.TemporaryDirectory(prefix="bench-magika-") as tmp:
            return magika_study(repeat, Path(tmp), threads)
    folder = Path(folder)
    fp32 = pretrained.magika_file()
    config = pretrained.magika_config()
    samples = magika_samples()
    features = np.concatenate([pretrained.magika_features(b, config) for _, b in samples])
    truth = [t for t, _ in samples]
    calibrate, evaluate = features[0::2], np.arange(len(samples))[1::2]
    name = onnx_input_name(fp32)
    paths = {
        "float32": fp32,
        "dynamic int8": quantize.quantize_dynamic_int8(fp32, folder / "magika.dynamic.onnx").path,
        "static int8 (QDQ)": quantize.quantize_static_int8(
            fp32,
            folder / "magika.static.onnx",
            [{name: row[None]} for row in calibrate],
            latency_repeat=3,
        ).path,
        "float16": quantize.to_float16(fp32, folder / "magika.fp16.onnx").path,
    }
    labels = config["target_labels_space"]
    probs = {
        label: np.concatenate(
            [bench.ort_session(path).run(None, {name: row[None]})[0] for row in features]
        )
        for label, path in paths.items()
    }
    top1 = {label: p.argmax(axis=1) for label, p in probs.items()}
    feed = {name: features[:1]}
    rows = _variant_rows(
        f"magika {_package_version('magika')} (standard_v3_3, 1 file)",
        paths,
        feed,
        threads,
        repeat,
        {
            label: {
                "accuracy": float(np.mean([labels[top1[label][i]] == truth[i] for i in evaluate])),
                "decisions_agree_vs_fp32": float(np.mean(top1[label] == top1["float32"])),
                "max_abs_diff_vs_fp32": float(np.abs(probs[label] - probs["float32"]).max()),
            }
            for label in paths
        },
    )
    return pd.DataFrame(rows)


def _variant_rows(
    model: str,
    paths: dict[str, Path],
    feed: dict[str, np.ndarray],
    threads: tuple[int | None, ...],
    repeat: int,
    quality: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """One row per thread setting and variant of a pretrained model: every variant (``paths``,
    float32 first as the baseline) timed interleaved on ``feed``, its size against float32, and
    the study's own quality columns (``quality[label]``)."""
    fp32_bytes = paths["float32"].stat().st_size
    rows = []
    for n_threads in threads:
        runners = {
            label: bench.session_runner(bench.ort_session(path, intra_op_threads=n_threads), feed)
            for label, path in paths.items()
        }
        cmp = bench.compare(runners, repeat=repeat, warmup=5, warn=False)
        for label, path in paths.items():
            rows.append(
                {
                    "model": model,
                    "variant": label,
                    "threads": "default" if n_threads is None else n_threads,
                    "batch": 1,
                    "size_kb": path.stat().st_size / 1024,
                    "size_ratio_vs_fp32": fp32_bytes / path.stat().st_size,
                    **quality[label],
                    **_timing_columns(cmp, label, "float32"),
                    "repeat": cmp[label].repeat,
                    **_machine_row(cmp[label].machine),
                }
            )
    return rows


def onnx_input_name(model: Path) -> str:
    """The name of a model file's first graph input."""
    import onnx

    return onnx.load(str(model), load_external_data=False).graph.input[0].name


def _timing_columns(cmp: Any, label: str, baseline: str) -> dict[str, float]:
    """A candidate's median and interval (ms) from ``bench.compare``, and its speed-up over
    ``baseline`` with the range the two medians' intervals give (conservative)."""
    res, base = cmp[label], cmp[baseline]
    return {
        "median_ms": res.median * 1e3,
        "ci_low_ms": res.ci_low * 1e3,
        "ci_high_ms": res.ci_high * 1e3,
        "speedup_vs_fp32": cmp.speedup(label),
        "speedup_low": base.ci_low / res.ci_high,
        "speedup_high": base.ci_high / res.ci_low,
    }


def _package_version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def quantization_with_encoder(
    repeat: int = 50, folder: Path | None = None, threads: tuple[int | None, ...] = THREADS
) -> pd.DataFrame:
    """:func:`quantization_study`'s digits rows, then :func:`pretrained_study`'s and
    :func:`encoder_study`'s rows."""
    digits = quantization_study(repeat=repeat, folder=folder, threads=threads)
    silero = pretrained_study(repeat=repeat, threads=threads)
    encoder = encoder_study(repeat=repeat, threads=threads)
    return pd.concat([digits, silero, encoder], ignore_index=True)


def write_results(frame: pd.DataFrame, name: str, title: str, out_dir: Path = RESULTS) -> Path:
    """Write ``name.csv`` (every column) and ``name.md`` (the figures, then machine facts)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / f"{name}.csv", index=False, float_format="%.4g")
    machine = bench.machine_info()
    per_run = ("torch_threads", "load_average_1min")
    # a partial run (--only encoder) keeps the other rows of the last full run, which may come
    # from another machine: a fact that differs between rows stays in the table as a column
    varying = [
        k
        for k in MACHINE_COLUMNS
        if k in frame.columns and k not in per_run and frame[k].nunique(dropna=False) > 1
    ]
    shown = frame.drop(
        columns=[c for c in MACHINE_COLUMNS if c in frame.columns and c not in varying]
    )
    facts = {
        k: frame[k].iloc[0] if k not in varying else "differs between rows: see the table's column"
        for k in MACHINE_COLUMNS
        if k in frame.columns and k not in per_run
    }
    low, high = frame["load_average_1min"].min(), frame["load_average_1min"].max()
    facts["load_average_1min"] = f"{low} to {high} during the run"
    facts["threads"] = (
        "'default' = each library's default (PyTorch: torch.get_num_threads(), recorded per row "
        "in the CSV; onnxruntime: one intra-op thread per physical core); 1 = "
        "torch.set_num_threads(1) and intra_op_num_threads=1"
    )
    facts["platform"] = machine["platform"]
    facts["python"] = machine["python"]
    facts["numpy_version"] = machine["numpy_version"]
    facts["onnx_version"] = machine["onnx_version"]
    lines = [
        f"# {title}",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `python -m benchmarks`; medians with "
        "95% bootstrap confidence intervals; candidates timed interleaved. Where intervals "
        "overlap, read the difference as not shown."
        + (
            " Rows measured on different machines (a partial run kept the rest of the last "
            "full run's rows): the columns " + ", ".join(varying) + " say which."
            if varying
            else ""
        ),
        "",
        _markdown_table(shown),
        "",
        *_load_note(high, machine.get("logical_cores")),  # this run's machine
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        "",
    ]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def _load_note(load: float, cores: Any) -> list[str]:
    if not cores or load < 0.5 * float(cores):
        return []
    return [
        f"**Load**: other processes kept this {cores}-core machine busy (1-minute load average up "
        f"to {load}). Every timing is inflated, and multi-threaded pools stall whenever another "
        "process holds one of their cores: read the one-thread rows, and the wide intervals and "
        "p99 of default-thread rows, in that light.",
        "",
    ]


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def merge_rows(csv: Path, new: pd.DataFrame, model_prefix: str | tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``csv`` whose model starts with none of ``model_prefix``, then ``new``."""
    if not csv.exists():
        return new
    old = pd.read_csv(csv)
    kept = old[~old["model"].astype(str).str.startswith(model_prefix)]
    return pd.concat([kept, new], ignore_index=True)
