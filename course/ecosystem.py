"""The ONNX ecosystem, measured on this machine, and the checks that keep a model usable later.

Four parts, each computed from the installed packages rather than quoted:

- **Operator history**: which operators each opset added, changed or deprecated (read from
  ``onnx.defs``), the ONNX release that shipped each opset (``onnx.helper.VERSION_TABLE``) and
  the publication date of each IR version (``onnx.Version``); a figure and an explorer widget.
- **Opset support**: the opsets each installed converter (torch.onnx, tf2onnx, skl2onnx,
  onnxscript) and runtime (onnxruntime, onnx.reference) declares, and what probes measure.
- **Future-proofing**: a model contract that a CI job checks (opsets, IR version, input and
  output names, types and shapes, metadata, parity on a sample), a model card stored in
  ``metadata_props``, checksums, and a reader for the safetensors header.
- **Pickle safety**: a scan of pickled weights for the opcodes that import and call Python
  objects (what makes loading a pickle able to run code), done with ``pickletools`` without
  ever loading the pickle.

Example::

    from course import ecosystem
    ecosystem.changes_between(17, 21)["added"]          # operators new in opsets 18 to 21
    ecosystem.timeline_figure()                          # added/changed per opset, releases
    ecosystem.scan_pickle(pickle.dumps({"a": [1, 2]})).safe        # True: plain data
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import pickletools
import re
import struct
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.defs
import pandas as pd
from onnx import helper

from course import figures, opsets
from course.palette import OKABE_ITO

__all__ = [
    "CALL_OPCODES",
    "ContractCheck",
    "ContractReport",
    "IMPORT_OPCODES",
    "ModelContract",
    "NotSafetensorsError",
    "OpsetSupport",
    "PickleFinding",
    "PickleScan",
    "TORCH_TENSOR_GLOBALS",
    "TensorSpec",
    "add_model_card",
    "changes_between",
    "changes_frame",
    "changes_view",
    "check_contract",
    "contract_from_model",
    "converter_support",
    "ecosystem_explorer",
    "ir_version_dates",
    "model_card",
    "opset_timeline",
    "probe_skl2onnx",
    "probe_torch_export",
    "runtime_support",
    "safetensors_header",
    "scan_pickle",
    "schema_events",
    "sha256_of",
    "support_figure",
    "support_frame",
    "timeline_figure",
]

#: Okabe-Ito colours (colour-blind safe).
_BLUE, _ORANGE, _GREEN, _VERMILLION, _PURPLE, _SKY, _YELLOW, _BLACK = OKABE_ITO

_EVENTS = ("added", "changed", "deprecated")


def _key(domain: str) -> str:
    key = "" if domain in ("", "ai.onnx") else domain
    opsets.latest_opset(key)  # raises a clear ValueError for an unknown domain
    return key


# ============================================================================================
# operator history
# ============================================================================================


@cache
def _schema_versions(key: str) -> dict[str, tuple[tuple[int, bool], ...]]:
    """operator -> ((since_version, deprecated), ...) ascending, for one domain."""
    versions: dict[str, list[tuple[int, bool]]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == key:
            versions.setdefault(schema.name, []).append(
                (int(schema.since_version), bool(schema.deprecated))
            )
    return {name: tuple(sorted(v)) for name, v in sorted(versions.items())}


def schema_events(domain: str = "") -> pd.DataFrame:
    """One row per schema version registered in the installed ``onnx``: when an operator was
    ``added`` (it becomes usable), ``changed`` (a new version of a usable operator) or
    ``deprecated`` (the schema is marked deprecated; a few operators, such as
    GroupNormalization-18, were deprecated retroactively and re-added in a later opset).

    Columns ``operator``, ``opset``, ``event``, ``domain``; sorted by opset, then operator.

    >>> events = schema_events()
    >>> events[events.operator == "Gelu"].event.tolist()[0]
    'added'
    """
    key = _key(domain)
    rows = []
    for name, history in _schema_versions(key).items():
        usable_before = False
        for version, deprecated in history:
            if deprecated:
                event = "deprecated"
            elif usable_before:
                event = "changed"
            else:
                event = "added"
            usable_before = not deprecated
            rows.append((name, version, event, key or "ai.onnx"))
    frame = pd.DataFrame(rows, columns=["operator", "opset", "event", "domain"])
    return frame.sort_values(["opset", "operator"], kind="stable").reset_index(drop=True)


def ir_version_dates() -> dict[int, _dt.date]:
    """Publication date of each IR version, read from the enum names in the installed ``onnx``
    (``onnx.Version``: ``IR_VERSION_2017_10_10 = 1`` ...). The newest IR version, still named
    plain ``IR_VERSION``, has no date yet and is left out.

    >>> ir_version_dates()[1]
    datetime.date(2017, 10, 10)
    """
    dates = {}
    for name, number in onnx.Version.items():
        match = re.fullmatch(r"IR_VERSION_(\d{4})_(\d{1,2})_(\d{1,2})", name)
        if match:
            dates[int(number)] = _dt.date(*(int(g) for g in match.groups()))
    return dates


def _first_releases(key: str) -> dict[int, tuple[str, int]]:
    """opset -> (first ONNX release whose highest opset of ``key`` is >= it, its IR version)."""
    column = {"": 2, "ai.onnx.ml": 3, "ai.onnx.training": 4}.get(key)
    found: dict[int, tuple[str, int]] = {}
    if column is None:
        return found
    for row in helper.VERSION_TABLE:
        if len(row) <= column:
            continue
        for version in range(1, int(row[column]) + 1):
            found.setdefault(version, (str(row[0]), int(row[1])))
    return found


def opset_timeline(domain: str = "") -> pd.DataFrame:
    """Per opset version of ``domain``: operators added, changed and deprecated, the number of
    operators usable at that opset, the first ONNX release that shipped it, that release's IR
    version and the IR version's publication date (empty where the table has no entry).

    >>> t = opset_timeline()
    >>> int(t.loc[20, "added"]) >= 1 and t.loc[18, "first_release"] == "1.13.0"
    True
    """
    key = _key(domain)
    latest = opsets.latest_opset(key)
    events = schema_events(key)
    counts = (
        events.groupby(["opset", "event"]).size().unstack(fill_value=0).reindex(columns=_EVENTS)
    )
    counts = counts.reindex(range(1, latest + 1), fill_value=0).fillna(0).astype(int)
    versions = _schema_versions(key)
    counts["operators_available"] = [
        sum(_usable(history, v) for history in versions.values()) for v in counts.index
    ]
    releases = _first_releases(key)
    dates = ir_version_dates()
    counts["first_release"] = [releases.get(v, ("", 0))[0] for v in counts.index]
    counts["ir_version"] = pd.array(
        [releases.get(v, ("", 0))[1] or None for v in counts.index], dtype="Int64"
    )
    counts["ir_published"] = [dates.get(releases.get(v, ("", 0))[1], pd.NaT) for v in counts.index]
    counts.index.name = "opset"
    counts.columns.name = None
    return counts


def _check_range(start: int, end: int, key: str) -> tuple[int, int]:
    latest = opsets.latest_opset(key)
    if isinstance(start, bool) or isinstance(end, bool):
        raise TypeError("start and end are opset numbers (int), not booleans")
    try:
        start, end = int(start), int(end)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"start and end must be opset numbers, got {start!r} and {end!r}") from exc
    if not 1 <= start <= end <= latest:
        raise ValueError(
            f"need 1 <= start <= end <= {latest} (the newest {key or 'ai.onnx'} opset this onnx "
            f"knows), got start={start}, end={end}; swap them if they are reversed"
        )
    return start, end


def _usable(history: tuple[tuple[int, bool], ...], opset: int) -> bool:
    in_force = [deprecated for version, deprecated in history if version <= opset]
    return bool(in_force) and not in_force[-1]


def changes_between(start: int, end: int, domain: str = "") -> dict[str, list[str]]:
    """What differs for a model moved from opset ``start`` to opset ``end`` (``start < v <= end``).

    ``added``: operators usable at ``end`` but not at ``start``; ``changed``: usable at both,
    with at least one new schema version in between (their meaning, attributes, inputs or types
    may differ: re-verify a model that uses them); ``deprecated``: usable at ``start``, no
    longer at ``end``. Each list is sorted by name.

    >>> changes_between(19, 20)["added"][:3]
    ['AffineGrid', 'Gelu', 'ImageDecoder']
    >>> changes_between(13, 13)
    {'added': [], 'changed': [], 'deprecated': []}
    """
    key = _key(domain)
    start, end = _check_range(start, end, key)
    result: dict[str, list[str]] = {event: [] for event in _EVENTS}
    for name, history in _schema_versions(key).items():
        before, after = _usable(history, start), _usable(history, end)
        if before and not after:
            result["deprecated"].append(name)
        elif after and not before:
            result["added"].append(name)
        elif before and any(start < version <= end for version, _ in history):
            result["changed"].append(name)
    return result


def changes_frame(start: int, end: int, domain: str = "") -> pd.DataFrame:
    """:func:`changes_between` as a table: operator, what happened, and the opset versions in
    ``(start, end]`` at which its schema changed.

    >>> changes_frame(20, 21).event.value_counts().to_dict()["changed"] > 5
    True
    """
    key = _key(domain)
    changes = changes_between(start, end, key)
    start, end = _check_range(start, end, key)
    versions = _schema_versions(key)
    rows = [
        (name, event, [v for v, _ in versions[name] if start < v <= end])
        for event in _EVENTS
        for name in changes[event]
    ]
    return pd.DataFrame(rows, columns=["operator", "event", "at opsets"])


def changes_view(opsets_range: tuple[int, int], domain: str = "ai.onnx") -> list[Any]:
    """The explorer's update function: a one-line summary and the table of changes between the
    two ends of ``opsets_range`` (an ``(start, end)`` pair, as an ``IntRangeSlider`` gives).

    >>> changes_view((20, 21))[0].startswith("ai.onnx opset 20 -> 21:")
    True
    """
    start, end = opsets_range
    key = _key(domain)
    frame = changes_frame(start, end, key)
    counts = frame.event.value_counts()
    timeline = opset_timeline(key)
    release = timeline.loc[int(end), "first_release"] or "no release listed"
    summary = (
        f"{key or 'ai.onnx'} opset {int(start)} -> {int(end)}: "
        + ", ".join(f"{counts.get(e, 0)} {e}" for e in _EVENTS)
        + f". Opset {int(end)} first shipped in onnx {release}; a model moved across this range"
        " needs the changed operators re-verified."
    )
    if frame.empty:
        return [summary]
    shown = frame.assign(**{"at opsets": frame["at opsets"].map(lambda v: ", ".join(map(str, v)))})
    return [summary, shown]


def ecosystem_explorer(start: int = 17, end: int = 21, domain: str = "ai.onnx") -> Any:
    """An ipywidgets explorer over :func:`changes_view`: pick an opset range and a domain, see the
    operators added, changed and deprecated (rendered into an HTML widget).

    Example::

        ecosystem_explorer(17, 21)          # last expression of a notebook cell
    """
    import ipywidgets as W

    from course import widgets

    key = _key(domain)
    start, end = _check_range(start, end, key)
    latest = max(opsets.latest_opset(""), opsets.latest_opset("ai.onnx.ml"))
    slider = W.IntRangeSlider(
        value=(start, end),
        min=1,
        max=latest,
        description="opsets",
        continuous_update=False,
    )
    choices = ["ai.onnx", "ai.onnx.ml"]
    chosen = key or "ai.onnx"
    if chosen not in choices:
        choices.append(chosen)
    dropdown = W.Dropdown(options=choices, value=chosen, description="domain")

    def update(opsets_range: tuple[int, int], domain: str) -> list[Any]:
        newest = opsets.latest_opset(domain)
        low, high = min(opsets_range[0], newest), min(opsets_range[1], newest)
        return changes_view((low, high), domain)

    return widgets.explorer(
        update,
        title="Operators added, changed and deprecated between two opsets (from onnx.defs)",
        opsets_range=slider,
        domain=dropdown,
    )


def timeline_figure(domain: str = "", ax: Any = None) -> Any:
    """Stacked bars of operators added, changed and deprecated per opset, with the operators
    usable at each opset (right axis) and the first ONNX release under each opset.

    >>> fig = timeline_figure()
    >>> fig.axes[0].get_xlabel().startswith("opset")
    True
    """
    key = _key(domain)
    t = opset_timeline(key)
    fig, ax = figures.axes(ax, (11, 4.6))
    x = np.asarray(t.index)
    bottom = np.zeros(len(t))
    for event, colour in zip(_EVENTS, (_BLUE, _ORANGE, _VERMILLION), strict=True):
        ax.bar(x, t[event], bottom=bottom, color=colour, label=f"operators {event}", width=0.8)
        bottom += t[event].to_numpy()
    ax.set_xlabel("opset version (first ONNX release that shipped it)")
    ax.set_ylabel("operator schemas (count)")
    labels = [
        f"{v}\n{rel.rsplit('.', 1)[0] if rel.count('.') == 2 else rel}" if rel else str(v)
        for v, rel in zip(x, t["first_release"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=7)
    right = ax.twinx()
    right.plot(x, t["operators_available"], "o-", color=_BLACK, ms=3, label="operators usable")
    right.set_ylabel("operators usable at that opset (count)")
    right.set_ylim(0, t["operators_available"].max() * 1.1)
    handles = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.set_ylim(0, bottom.max() * 1.25)
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", ncol=4, fontsize=8)
    ax.set_title(
        f"How the {key or 'ai.onnx'} operator set evolved "
        f"(onnx {onnx.__version__}, read from onnx.defs)"
    )
    return figures.finish(fig)


# ============================================================================================
# opset support of converters and runtimes
# ============================================================================================


@dataclass
class OpsetSupport:
    """The ai.onnx opsets one tool supports: what it declares, and what a probe measured.

    ``declared`` is ``(lowest, highest)`` from the tool's own constants (None where it declares
    none); ``default`` the opset it writes when asked for none; ``probed`` maps each probed
    opset to "ok" or the reason it failed; ``source`` says where each number comes from.
    """

    tool: str
    role: str  # "converter" or "runtime"
    version: str
    declared: tuple[int, int] | None
    default: int | None = None
    probed: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def with_probe(self, probe: pd.DataFrame) -> OpsetSupport:
        """A copy whose ``probed`` holds the outcomes of a probe table (``probe_torch_export``,
        ``probe_skl2onnx``: index ``requested``, column ``outcome``)."""
        if "outcome" not in probe.columns:
            raise ValueError("expected a probe table with an 'outcome' column (probe_skl2onnx())")
        outcomes = {int(v): str(o) for v, o in probe["outcome"].items()}
        return replace(self, probed={**self.probed, **outcomes})

    @property
    def measured(self) -> tuple[int, int] | None:
        """(lowest, highest) probed opset that worked, or None when nothing was probed."""
        ok = [v for v, outcome in self.probed.items() if outcome == "ok"]
        return (min(ok), max(ok)) if ok else None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _torch_support() -> OpsetSupport:
    from torch.onnx import _constants as public
    from torch.onnx._internal.exporter import _constants as exporter

    floor = getattr(exporter, "TORCHLIB_OPSET", None)
    high = getattr(public, "ONNX_MAX_OPSET", None)
    return OpsetSupport(
        "torch.onnx (dynamo=True)",
        "converter",
        _version("torch"),
        (int(floor), int(high)) if floor and high else None,
        getattr(public, "ONNX_DEFAULT_OPSET", None),
        source=(
            "torchlib is written for opset TORCHLIB_OPSET; lower requests go through onnx's "
            "version converter (may fail). Highest: torch.onnx._constants.ONNX_MAX_OPSET; "
            "default: ONNX_DEFAULT_OPSET"
        ),
    )


def _tf2onnx_support() -> OpsetSupport:
    spec = importlib.util.find_spec("tf2onnx")
    if spec is None or not spec.submodule_search_locations:
        return OpsetSupport("tf2onnx", "converter", "not installed", None, source="not installed")
    # tf2onnx/constants.py imports only onnx.helper: load it alone, without importing TensorFlow
    path = Path(next(iter(spec.submodule_search_locations))) / "constants.py"
    module_spec = importlib.util.spec_from_file_location("_tf2onnx_constants", path)
    constants = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(constants)  # type: ignore[union-attr]
    highest = max(constants.OPSET_TO_IR_VERSION)
    description = importlib.metadata.metadata("tf2onnx").get_payload() or ""
    tested = re.search(r"test ONNX opset-(\d+) to opset-(\d+)", str(description))
    lowest = int(tested.group(1)) if tested else min(constants.OPSET_TO_IR_VERSION)
    return OpsetSupport(
        "tf2onnx",
        "converter",
        _version("tf2onnx"),
        (lowest, int(highest)),
        int(constants.PREFERRED_OPSET),
        source=(
            "highest: max of tf2onnx.constants.OPSET_TO_IR_VERSION; default: PREFERRED_OPSET; "
            "lowest: the tested range stated in the package description"
        ),
    )


def _skl2onnx_support() -> OpsetSupport:
    import skl2onnx

    return OpsetSupport(
        "skl2onnx",
        "converter",
        _version("skl2onnx"),
        (1, int(skl2onnx.get_latest_tested_opset_version())),
        None,
        source=(
            "highest: skl2onnx.get_latest_tested_opset_version(); no declared floor; default: "
            "the highest tested (or the lowest an operator needs)"
        ),
    )


def _onnxscript_support() -> OpsetSupport:
    import onnxscript

    numbers = [int(m.group(1)) for n in dir(onnxscript) if (m := re.fullmatch(r"opset(\d+)", n))]
    return OpsetSupport(
        "onnxscript (authoring)",
        "converter",
        _version("onnxscript"),
        (min(numbers), max(numbers)) if numbers else None,
        None,
        source="the onnxscript.opsetN modules it ships",
    )


def converter_support() -> list[OpsetSupport]:
    """Declared ai.onnx opset ranges of the installed converters, read from their own code.

    torch.onnx (dynamo exporter), tf2onnx (its ``constants.py`` is read without importing
    TensorFlow), skl2onnx and onnxscript. Probes that measure them are :func:`probe_torch_export`
    and :func:`probe_skl2onnx`.

    Example::

        [s.tool for s in converter_support()]
        # ['torch.onnx (dynamo=True)', 'tf2onnx', 'skl2onnx', 'onnxscript (authoring)']
    """
    return [_torch_support(), _tf2onnx_support(), _skl2onnx_support(), _onnxscript_support()]


def _reference_probe(versions: Iterable[int]) -> dict[int, str]:
    from onnx.reference import ReferenceEvaluator

    outcomes = {}
    for v in versions:
        model = _add_model(int(v))
        try:
            ReferenceEvaluator(model).run(None, {"x": np.ones(2, np.float32)})
            outcomes[int(v)] = "ok"
        except Exception as exc:  # the reason is the measurement
            outcomes[int(v)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return outcomes


def _add_model(opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def runtime_support(versions: Iterable[int] | None = None) -> list[OpsetSupport]:
    """Probe the installed runtimes: load and run a one-node ``Add`` model at each opset.

    onnxruntime is probed with :func:`course.opsets.probe_opsets`; ``onnx.reference`` runs the
    same model with ``ReferenceEvaluator``. Default versions: 1 to two past the newest opset
    the installed onnx knows (so a runtime that does not refuse unknown opsets shows it).

    >>> ort, ref = runtime_support(versions=[13])
    >>> ort.probed, ref.probed
    ({13: 'ok'}, {13: 'ok'})
    """
    latest = opsets.latest_opset("")
    versions = list(range(1, latest + 3) if versions is None else versions)
    probe = opsets.probe_opsets("", versions)
    ort_outcomes = {v: "ok" if o == "accepted" else o for v, o in probe.outcomes.items()}
    return [
        OpsetSupport(
            "onnxruntime",
            "runtime",
            _version("onnxruntime"),
            None,
            None,
            ort_outcomes,
            source="probe: an Add model stamped with each opset, loaded (course.opsets)",
        ),
        OpsetSupport(
            "onnx.reference",
            "runtime",
            _version("onnx"),
            (1, latest),
            None,
            _reference_probe(versions),
            source=(
                "declared: the schemas of the installed onnx (onnx.defs.onnx_opset_version()); "
                "probe: the same Add model run by ReferenceEvaluator"
            ),
        ),
    ]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence warnings, log records and prints of a noisy exporter for the block."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


#: Warnings the probes drop from their notes: library-internal deprecations, not about opsets.
_PROBE_NOISE = ("treespec",)


def _probe_rows(
    convert: Callable[[int], onnx.ModelProto],
    versions: Iterable[int],
    sample: np.ndarray,
    expected: np.ndarray,
    output: int = 0,
) -> pd.DataFrame:
    """Convert at each opset; record the stamp, whether onnxruntime loads and agrees, and why."""
    import onnxruntime as ort

    rows = []
    for v in versions:
        v = int(v)
        started = time.perf_counter()
        stamped, outcome, note, error = None, "ok", "", None
        try:
            with _quiet(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = convert(v)
            stamped = max(
                (i.version for i in model.opset_import if i.domain in ("", "ai.onnx")),
                default=None,
            )
            messages = {str(w.message).splitlines()[0][:100] for w in caught}
            note = "; ".join(sorted(m for m in messages if not any(n in m for n in _PROBE_NOISE)))
            refused = opsets.load_error(model)
            if refused:
                outcome = "onnxruntime refuses the result"
                note = (note + "; " if note else "") + refused[:120]
            else:
                quiet = ort.SessionOptions()
                quiet.log_severity_level = 3  # old IRs warn about initializers listed as inputs
                session = ort.InferenceSession(
                    model.SerializeToString(), quiet, providers=["CPUExecutionProvider"]
                )
                got = session.run(None, {session.get_inputs()[0].name: sample})[output]
                error = float(np.max(np.abs(np.asarray(got, np.float64) - expected)))
                if not error <= 1e-4:
                    outcome = "wrong results"
                elif stamped != v:
                    outcome = f"stamped opset {stamped} instead"
        except Exception as exc:  # the failure is the measurement
            outcome = "conversion failed"
            note = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:140]}"
        rows.append(
            {
                "requested": v,
                "stamped": stamped,
                "outcome": outcome,
                "max |error|": error,
                "seconds": round(time.perf_counter() - started, 3),
                "note": note,
            }
        )
    frame = pd.DataFrame(rows).set_index("requested")
    frame["stamped"] = frame["stamped"].astype("Int64")
    return frame


def probe_torch_export(versions: Iterable[int], model: Any = None) -> pd.DataFrame:
    """Export a small PyTorch model with ``torch.onnx.export(dynamo=True)`` at each requested
    opset; record the opset the file is stamped with, whether onnxruntime loads it and matches
    PyTorch (``max |error|``), the time taken and what the exporter warned (its log lines are
    kept out of the notebook). ``outcome`` is "ok" only when the stamp is the one requested.

    Each export takes about a second: probe a few versions, not all. ``model`` defaults to a
    ``Linear-ReLU`` module with input 2 x 4.

    Example::

        probe_torch_export([16, 18, 23])       # stamped, outcome, max |error|, seconds, note
    """
    import torch

    if model is None:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    with torch.no_grad():
        expected = model(x).numpy().astype(np.float64)

    def convert(v: int) -> onnx.ModelProto:
        program = torch.onnx.export(
            model, (x,), dynamo=True, opset_version=v, verbose=False, optimize=False
        )
        return program.model_proto

    return _probe_rows(convert, versions, x.numpy(), expected)


def probe_skl2onnx(versions: Iterable[int] | None = None) -> pd.DataFrame:
    """Convert a small scikit-learn pipeline (scaler and a one-layer MLP classifier) with
    skl2onnx at each requested ai.onnx opset (default: 1 to two past the newest the installed
    onnx knows); record the stamp, whether onnxruntime loads the result and matches
    scikit-learn's probabilities, and skl2onnx's warnings.

    Example::

        probe_skl2onnx([5, 7, 22, 23])["outcome"]
    """
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    mlp = MLPClassifier((5,), solver="lbfgs", max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on this toy problem
        pipe = make_pipeline(StandardScaler(), mlp).fit(X, (X[:, 0] > 0).astype(int))
    latest = opsets.latest_opset("")
    versions = list(range(1, latest + 3) if versions is None else versions)

    def convert(v: int) -> onnx.ModelProto:
        return to_onnx(
            pipe, X[:1], target_opset={"": v, "ai.onnx.ml": 1}, options={"zipmap": False}
        )

    expected = pipe.predict_proba(X).astype(np.float64)
    return _probe_rows(convert, versions, X, expected, output=1)


def support_frame(rows: Sequence[OpsetSupport]) -> pd.DataFrame:
    """The support rows as a table: declared range, default, measured range, source.

    >>> support_frame(converter_support()).loc["skl2onnx", "role"]
    'converter'
    """

    def text(r: tuple[int, int] | None) -> str:
        return f"{r[0]}-{r[1]}" if r else ""

    return pd.DataFrame(
        {
            "role": [r.role for r in rows],
            "version": [r.version for r in rows],
            "declared": [text(r.declared) for r in rows],
            "default": [r.default if r.default is not None else "" for r in rows],
            "measured (probe)": [text(r.measured) for r in rows],
            "probed": [len(r.probed) for r in rows],
            "source": [r.source for r in rows],
        },
        index=pd.Index([r.tool for r in rows], name="tool"),
    )


def support_figure(rows: Sequence[OpsetSupport], title: str | None = None) -> Any:
    """One row per tool: declared range (bar), default (diamond), probed opsets (dot: worked,
    cross: failed), and the newest opset the installed onnx knows (dashed line).

    >>> fig = support_figure(converter_support())
    >>> fig.axes[0].get_xlabel()
    'ai.onnx opset version'
    """
    if not rows:
        raise ValueError("support_figure needs at least one OpsetSupport (converter_support())")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig, ax = figures.figure((11, 0.8 + 0.55 * len(rows)))
    colours = {"converter": _SKY, "runtime": _ORANGE}
    for y, row in enumerate(rows):
        if row.declared:
            low, high = row.declared
            ax.barh(y, high - low + 0.8, left=low - 0.4, height=0.5, color=colours[row.role])
        if row.default is not None:
            ax.plot(row.default, y, "D", color=_BLACK, ms=7)
        ok = [v for v, o in row.probed.items() if o == "ok"]
        bad = [v for v, o in row.probed.items() if o != "ok"]
        ax.plot(ok, [y] * len(ok), "o", color=_GREEN, ms=5)
        ax.plot(bad, [y] * len(bad), "x", color=_VERMILLION, ms=6, mew=2)
    latest = opsets.latest_opset("")
    ax.axvline(latest + 0.5, color=_BLACK, ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [f"{r.tool} {r.version}" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ai.onnx opset version")
    ax.set_xlim(0.3, max([latest + 2.7] + [max(r.probed, default=0) + 0.7 for r in rows]))
    ax.set_xticks(range(1, int(ax.get_xlim()[1]) + 1))
    ax.tick_params(axis="x", labelsize=8)
    handles = [
        Rectangle((0, 0), 1, 1, color=_SKY, label="declared range (converter)"),
        Rectangle((0, 0), 1, 1, color=_ORANGE, label="declared range (runtime)"),
        Line2D([], [], marker="D", color=_BLACK, ls="", label="default opset"),
        Line2D([], [], marker="o", color=_GREEN, ls="", label="probe: worked"),
        Line2D([], [], marker="x", color=_VERMILLION, ls="", mew=2, label="probe: failed"),
        Line2D([], [], color=_BLACK, ls="--", label=f"newest opset in onnx {onnx.__version__}"),
    ]
    figures.legend_below(ax, handles, offset=-0.5 if len(rows) < 4 else -0.22)
    ax.set_title(title or "Opsets each installed converter and runtime supports")
    return figures.finish(fig)


# ============================================================================================
# model contract (what a CI job checks before a model ships)
# ============================================================================================


@dataclass
class TensorSpec:
    """A promised input or output: its name, NumPy dtype name and shape.

    In ``shape`` an ``int`` is a fixed size, a ``str`` a dimension that must stay dynamic
    (symbolic or unknown, e.g. the batch), and ``None`` a dimension the contract does not check.
    """

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


@dataclass
class ModelContract:
    """What a model promises its users; :func:`check_contract` checks a model against it.

    ``opsets`` maps a domain (``""`` for ai.onnx) to the allowed ``(lowest, highest)`` opset;
    ``max_ir_version`` is the newest IR version the deployment runtime reads;
    ``metadata_keys`` must be present in ``metadata_props``; ``sample`` and ``expected`` are a
    fixed input and the outputs it must give, within ``rtol``/``atol``.
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opsets: dict[str, tuple[int, int]]
    max_ir_version: int | None = None
    metadata_keys: tuple[str, ...] = ()
    sample: dict[str, np.ndarray] | None = None
    expected: list[np.ndarray] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class ContractCheck:
    """One line of a contract report."""

    check: str
    passed: bool
    detail: str


@dataclass
class ContractReport:
    """The result of :func:`check_contract`: ``passed`` when every check passed."""

    rows: list[ContractCheck]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def problems(self) -> list[str]:
        """The failed checks, one sentence each."""
        return [f"{r.check}: {r.detail}" for r in self.rows if not r.passed]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "check": [r.check for r in self.rows],
                "passed": [r.passed for r in self.rows],
                "detail": [r.detail for r in self.rows],
            }
        )

    def __str__(self) -> str:
        head = "contract PASSED" if self.passed else f"contract FAILED ({len(self.problems)})"
        lines = [f"{'ok  ' if r.passed else 'FAIL'} {r.check}: {r.detail}" for r in self.rows]
        return "\n".join([head, *lines])

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else f"FAILED: {len(self.problems)} problem(s)"
        return f"<b>Model contract {verdict}</b>" + self.to_frame().to_html(index=False)


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)


def _dtype(value: onnx.ValueInfoProto) -> str:
    elem = value.type.tensor_type.elem_type
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name
    except Exception:  # noqa: BLE001 - a type NumPy cannot name (or an undefined elem_type)
        return f"elem_type {elem}"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    return TensorSpec(value.name, _dtype(value), _dims(value))


def _real_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in inits]


def contract_from_model(
    model: Any,
    sample: Mapping[str, np.ndarray] | np.ndarray | None = None,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> ModelContract:
    """Record what a model promises today, to check future versions against it in CI.

    Inputs and outputs as they are declared (a symbolic or unknown dimension must stay
    dynamic), the exact opset stamp of every imported domain, the IR version as the maximum,
    the metadata keys present, and, when ``sample`` is given, the outputs onnxruntime computes
    for it as the expected values.

    Example::

        contract = contract_from_model("model.onnx", X_test[:8])
        check_contract("model-v2.onnx", contract).passed
    """
    from course.verify import load_model, run_onnx

    proto = load_model(model)
    feeds = None
    expected = None
    if sample is not None:
        names = [v.name for v in _real_inputs(proto)]
        feeds = dict(sample) if isinstance(sample, Mapping) else {names[0]: np.asarray(sample)}
        expected = run_onnx(proto, feeds)
    return ModelContract(
        inputs=[_spec(v) for v in _real_inputs(proto)],
        outputs=[_spec(v) for v in proto.graph.output],
        opsets={
            i.domain if i.domain != "ai.onnx" else "": (i.version, i.version)
            for i in proto.opset_import
        },
        max_ir_version=int(proto.ir_version),
        metadata_keys=tuple(p.key for p in proto.metadata_props),
        sample=feeds,
        expected=expected,
        rtol=rtol,
        atol=atol,
    )


def _compare_specs(
    kind: str, promised: Sequence[TensorSpec], actual: Sequence[onnx.ValueInfoProto]
) -> list[ContractCheck]:
    rows = []
    by_name = {v.name: v for v in actual}
    for spec in promised:
        label = f"{kind} {spec.name!r}"
        value = by_name.get(spec.name)
        if value is None:
            rows.append(
                ContractCheck(label, False, f"missing; the model's {kind}s are {sorted(by_name)}")
            )
            continue
        got_dtype, got_dims = _dtype(value), _dims(value)
        problems = []
        if got_dtype != spec.dtype:
            problems.append(f"dtype {got_dtype}, promised {spec.dtype}")
        if len(got_dims) != len(spec.shape):
            problems.append(f"rank {len(got_dims)} {list(got_dims)}, promised {list(spec.shape)}")
        else:
            for axis, (want, got) in enumerate(zip(spec.shape, got_dims, strict=True)):
                if want is None:
                    continue
                if isinstance(want, str) and not isinstance(got, str):
                    problems.append(f"axis {axis} is fixed to {got}, promised dynamic ({want})")
                elif isinstance(want, int) and got != want:
                    problems.append(f"axis {axis} is {got}, promised {want}")
        shape_text = "[" + ", ".join(str(d) for d in got_dims) + "]"
        rows.append(
            ContractCheck(
                label,
                not problems,
                "; ".join(problems) if problems else f"{got_dtype}{shape_text}",
            )
        )
    return rows


def check_contract(model: Any, contract: ModelContract) -> ContractReport:
    """Check a model against a :class:`ModelContract`; every check is reported, none raises.

    Checks: onnxruntime loads it; IR version; each domain's opset within range (and no domain
    the contract does not list); each promised input and output (name, dtype, shape, dynamic
    dimensions still dynamic); metadata keys; parity on the contract's sample.

    Example::

        report = check_contract("model-v2.onnx", contract)
        assert report.passed, "\\n".join(report.problems)     # what a CI job runs
    """
    from course.verify import load_model, run_onnx

    if not isinstance(contract, ModelContract):
        raise TypeError(
            f"contract must be a ModelContract (see contract_from_model), got "
            f"{type(contract).__name__}"
        )
    proto = load_model(model)
    rows: list[ContractCheck] = []
    refused = opsets.load_error(proto)
    rows.append(ContractCheck("loads in onnxruntime", not refused, refused[:200] or "loads"))
    if contract.max_ir_version is not None:
        ok = proto.ir_version <= contract.max_ir_version
        rows.append(
            ContractCheck(
                "IR version",
                ok,
                f"{proto.ir_version} (at most {contract.max_ir_version})",
            )
        )
    stamps = {(i.domain if i.domain != "ai.onnx" else ""): i.version for i in proto.opset_import}
    for domain, (low, high) in contract.opsets.items():
        key = "" if domain == "ai.onnx" else domain
        got = stamps.get(key)
        ok = got is not None and low <= got <= high
        rows.append(
            ContractCheck(
                f"opset {key or 'ai.onnx'}",
                ok,
                f"{got if got is not None else 'not imported'} (allowed {low}-{high})",
            )
        )
    allowed_domains = {"" if d == "ai.onnx" else d for d in contract.opsets}
    for domain in sorted(set(stamps) - allowed_domains):
        rows.append(
            ContractCheck(
                f"opset {domain}",
                False,
                f"imports domain {domain!r} (version {stamps[domain]}), which the contract "
                "does not allow",
            )
        )
    rows += _compare_specs("input", contract.inputs, _real_inputs(proto))
    rows += _compare_specs("output", contract.outputs, list(proto.graph.output))
    present = {p.key for p in proto.metadata_props}
    for key in contract.metadata_keys:
        rows.append(
            ContractCheck(
                f"metadata {key!r}",
                key in present,
                "present" if key in present else f"missing (has {sorted(present)})",
            )
        )
    if contract.sample is not None and contract.expected is not None:
        rows.append(_parity_row(proto, contract, run_onnx, refused))
    return ContractReport(rows)


def _parity_row(
    proto: onnx.ModelProto, contract: ModelContract, run_onnx: Callable, refused: str
) -> ContractCheck:
    if refused:
        return ContractCheck("parity on the sample", False, "not run: the model does not load")
    try:
        got = run_onnx(proto, contract.sample)
    except Exception as exc:  # a failure to run is a failed check, reported
        return ContractCheck(
            "parity on the sample", False, f"{type(exc).__name__}: {str(exc)[:160]}"
        )
    if len(got) != len(contract.expected):
        return ContractCheck(
            "parity on the sample",
            False,
            f"{len(got)} outputs, expected {len(contract.expected)}",
        )
    worst = 0.0
    for g, e in zip(got, contract.expected, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            return ContractCheck(
                "parity on the sample", False, f"output shape {g.shape}, expected {e.shape}"
            )
        if not np.allclose(g, e, rtol=contract.rtol, atol=contract.atol):
            diff = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64))))
            return ContractCheck(
                "parity on the sample",
                False,
                f"max |difference| {diff:.3g} exceeds rtol={contract.rtol}, atol={contract.atol}",
            )
        if g.size and np.issubdtype(g.dtype, np.number):
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))))
    return ContractCheck("parity on the sample", True, f"max |difference| {worst:.2g}")


# ============================================================================================
# provenance: model card, checksums, safetensors header
# ============================================================================================


def add_model_card(model: onnx.ModelProto, card: Mapping[str, str]) -> onnx.ModelProto:
    """A copy of ``model`` with ``card`` written into ``metadata_props`` (existing keys are
    replaced, others kept). Values must be strings: serialise anything else with
    ``json.dumps`` first.

    >>> m = add_model_card(opsets.tiny_example("Relu", 14).model, {"license": "MIT"})
    >>> model_card(m)
    {'license': 'MIT'}
    """
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    for key, value in card.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata_props holds strings only; got {key!r}: {type(value).__name__}. "
                "Use json.dumps(value) for numbers, lists and dicts"
            )
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [(p.key, p.value) for p in copy.metadata_props if p.key not in card]
    del copy.metadata_props[:]
    for key, value in [*kept, *card.items()]:
        entry = copy.metadata_props.add()
        entry.key, entry.value = key, value
    return copy


def model_card(model: Any) -> dict[str, str]:
    """The ``metadata_props`` of a model (ModelProto, path or bytes) as a dict."""
    from course.verify import load_model

    return {p.key: p.value for p in load_model(model).metadata_props}


def sha256_of(data: bytes | str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of bytes or of a file's content (read in chunks).

    >>> sha256_of(b"onnx")[:12]
    '87e93f89f2be'
    """
    digest = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(data)
        return digest.hexdigest()
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}; pass bytes or an existing path")
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class NotSafetensorsError(ValueError):
    """The bytes are not a safetensors file (no 8-byte length followed by a JSON header)."""


def safetensors_header(source: bytes | str | os.PathLike[str]) -> dict[str, Any]:
    """Read the JSON header of a safetensors file without any safetensors code.

    The format is an unsigned 64-bit little-endian header length, that many bytes of JSON
    (tensor name -> dtype, shape, data_offsets; plus an optional ``__metadata__`` of strings),
    then the raw tensor bytes. Nothing in it is executable.

    >>> from safetensors.numpy import save
    >>> safetensors_header(save({"w": np.zeros(3, np.float32)}))["w"]["shape"]
    [3]
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:8])
        data = bytes(source)
        where = "these bytes"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}")
        data = path.read_bytes()
        head = data[:8]
        where = str(path)
    if len(head) < 8:
        raise NotSafetensorsError(f"{where}: too short to be safetensors ({len(data)} bytes)")
    (length,) = struct.unpack("<Q", head)
    if length > len(data) - 8:
        raise NotSafetensorsError(
            f"{where} is not safetensors: the first 8 bytes announce a {length}-byte header but "
            f"only {len(data) - 8} bytes follow (a pickle or zip checkpoint? Save with "
            "safetensors.torch.save_file or safetensors.numpy.save_file)"
        )
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotSafetensorsError(f"{where} is not safetensors: its header is not JSON") from exc
    if not isinstance(header, dict):
        raise NotSafetensorsError(f"{where} is not safetensors: its header is not a JSON object")
    return header


# ============================================================================================
# pickle safety
# ============================================================================================

#: Opcodes that import a Python object by module and name (the first half of running code).
IMPORT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"})
#: Opcodes that call or build an object from something imported (the second half).
CALL_OPCODES = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})
#: The globals a plain PyTorch state dict pickles: enough to rebuild tensors, nothing else
#: (PyTorch's own ``weights_only`` unpickler allows a larger, curated set).
TORCH_TENSOR_GLOBALS = frozenset(
    [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
    ]
    + [
        f"torch.{kind}Storage"
        for kind in "Float Double Half BFloat16 Long Int Short Char Byte Bool".split()
    ]
)

_STRING_OPCODES = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)


@dataclass
class PickleFinding:
    """One opcode that imports or calls: where it is, which opcode, and what it names."""

    member: str  # "" for a bare pickle, the archive member for a torch.save zip
    position: int
    opcode: str
    detail: str


@dataclass
class PickleScan:
    """What a pickle would import and call if loaded (nothing is loaded to find out)."""

    imports: list[str]
    findings: list[PickleFinding]
    allowed: frozenset[str] = frozenset()

    @property
    def calls(self) -> int:
        """How many opcodes call or build objects (REDUCE, NEWOBJ, BUILD, ...)."""
        return sum(f.opcode in CALL_OPCODES for f in self.findings)

    @property
    def unsafe_imports(self) -> list[str]:
        """Imports outside the allowlist: each one can be any callable, ``os.system`` included."""
        return [name for name in self.imports if name not in self.allowed]

    @property
    def safe(self) -> bool:
        """True when the pickle imports nothing outside the allowlist."""
        return not self.unsafe_imports

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "member": [f.member for f in self.findings],
                "position": [f.position for f in self.findings],
                "opcode": [f.opcode for f in self.findings],
                "detail": [f.detail for f in self.findings],
                "allowed": [
                    (f.detail in self.allowed) if f.opcode in IMPORT_OPCODES else ""
                    for f in self.findings
                ],
            }
        )

    def __str__(self) -> str:
        verdict = "safe (imports only allowed globals)" if self.safe else "UNSAFE"
        return (
            f"pickle scan: {verdict}; imports {self.imports or 'nothing'}; "
            f"{self.calls} call/build opcode(s); not allowed: {self.unsafe_imports or 'none'}"
        )


def _scan_one(data: bytes, member: str) -> tuple[list[str], list[PickleFinding]]:
    imports: list[str] = []
    findings: list[PickleFinding] = []
    memo: dict[int, Any] = {}
    strings: list[str | None] = []  # recent pushes that STACK_GLOBAL may consume
    last: Any = None
    try:
        for opcode, arg, position in pickletools.genops(data):
            name = opcode.name
            pushed: Any = None
            if name in _STRING_OPCODES:
                pushed = arg.decode("latin-1") if isinstance(arg, bytes) else arg
                strings.append(pushed)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed = memo.get(int(arg))
                strings.append(pushed if isinstance(pushed, str) else None)
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = last
            if name in IMPORT_OPCODES:
                if name in ("GLOBAL", "INST"):
                    target = ".".join(str(arg).split(" ", 1))
                elif name == "STACK_GLOBAL":
                    module, attr = strings[-2:] if len(strings) >= 2 else [None, None]
                    target = f"{module or '?'}.{attr or '?'}"
                    strings = strings[:-2]
                else:
                    target = f"copyreg extension {arg}"
                if target not in imports:
                    imports.append(target)
                findings.append(PickleFinding(member, position, name, target))
                pushed = ("global", target)  # memoized as an object, never mistaken for a string
            elif name in CALL_OPCODES:
                findings.append(PickleFinding(member, position, name, "calls/builds an object"))
            if name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                last = pushed
    except Exception as exc:  # pickletools' own message says where the stream broke
        where = f"{member}: " if member else ""
        raise ValueError(
            f"{where}not a readable pickle stream ({type(exc).__name__}: {exc}); pass the bytes "
            "of a .pkl, or the path of a torch.save checkpoint"
        ) from exc
    return imports, findings


def scan_pickle(source: bytes | str | os.PathLike[str], allowed: Iterable[str] = ()) -> PickleScan:
    """List what a pickle would import and call if it were loaded, without loading it.

    ``source`` is the pickle's bytes, a path to a pickle, or a path to (or bytes of) a
    ``torch.save`` checkpoint (a zip archive: every ``.pkl`` member is scanned). Imports are
    ``"module.name"`` strings in first-seen order; ``STACK_GLOBAL`` (protocol 4 and later) is
    resolved from the strings pushed before it, memo included. ``allowed`` names the imports
    you accept (e.g. :data:`TORCH_TENSOR_GLOBALS`); anything else makes ``safe`` False.

    >>> import pickle
    >>> scan_pickle(pickle.dumps({"weights": [0.5, 1.5], "note": "os.system"})).safe
    True
    >>> scan_pickle(pickle.dumps(print)).imports
    ['builtins.print']
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}")
        data = path.read_bytes()
    imports: list[str] = []
    findings: list[PickleFinding] = []
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [n for n in archive.namelist() if n.endswith(".pkl")]
            if not members:
                raise ValueError(
                    "this zip archive holds no .pkl member: it is not a torch.save checkpoint"
                )
            for member in members:
                found, where = _scan_one(archive.read(member), member)
                imports += [n for n in found if n not in imports]
                findings += where
    else:
        imports, findings = _scan_one(data, "")
    return PickleScan(imports, findings, frozenset(allowed))
