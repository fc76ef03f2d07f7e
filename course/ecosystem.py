"""The ONNX ecosystem, measured on this machine, and the checks that keep a model usable later.

Four parts, each computed from the installed packages rather than quoted:

- **Operator history**: which operators each opset added, changed or deprecated (read from
  ``onnx.defs``), the ONNX release that shipped each opset (``onnx.helper.VERSION_TABLE``) and
  the publication date of each IR version (``onnx.Version``); a figure and an explorer widget.
- **Opset support**: the opsets each installed converter (torch.onnx, tf2onnx, skl2onnx,
  onnxscript) and runtime (onnxruntime, onnx.reference) declares, and what probes measure.
- **Future-proofing** (:mod:`course.model_contract`, re-exported here): a model contract that
  a CI job checks (opsets, IR version, input and output names, types and shapes, metadata,
  parity on a sample), a model card stored in ``metadata_props``, checksums, and a reader for
  the safetensors header.
- **Pickle safety** (:mod:`course.pickle_scan`, re-exported here): a scan of pickled weights
  for the opcodes that import and call Python objects (what makes loading a pickle able to run
  code), done with ``pickletools`` without ever loading the pickle.

This module holds the first two; ``ecosystem.<name>`` keeps working for every name of the two
others.

Example::

    from course import ecosystem
    ecosystem.changes_between(17, 21)["added"]          # operators new in opsets 18 to 21
    ecosystem.timeline_figure()                          # added/changed per opset, releases
    ecosystem.scan_pickle(pickle.dumps({"a": [1, 2]})).safe        # True: plain data
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import importlib.util
import io
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from course.model_contract import (
    ContractCheck,
    ContractReport,
    ModelContract,
    NotSafetensorsError,
    TensorSpec,
    add_model_card,
    check_contract,
    contract_from_model,
    model_card,
    safetensors_header,
    sha256_of,
)
from course.palette import OKABE_ITO
from course.pickle_scan import (
    CALL_OPCODES,
    IMPORT_OPCODES,
    TORCH_TENSOR_GLOBALS,
    PickleFinding,
    PickleScan,
    scan_pickle,
)

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

    >>> row = OpsetSupport("skl2onnx", "converter", "1.19", (1, 21), 21, {20: "ok", 24: "failed"})
    >>> support_frame([row]).loc["skl2onnx", ["role", "measured (probe)"]].tolist()
    ['converter', '20-20']
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

    >>> rows = [OpsetSupport("skl2onnx", "converter", "1.19", (1, 21), 21, {20: "ok", 24: "failed"}),
    ...         OpsetSupport("onnxruntime", "runtime", "1.23", (7, 23), probed={23: "ok"})]
    >>> fig = support_figure(rows)   # converter_support() + runtime_support(): what is installed
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
