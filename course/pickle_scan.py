"""Pickle safety: which pickled weights can run code when loaded, found without loading them.

:func:`scan_pickle` reads a pickle (or each pickle inside a PyTorch ``.pt`` zip) with
``pickletools`` and lists the opcodes that import and call Python objects, the ones that make
``pickle.load`` able to run code; :data:`TORCH_TENSOR_GLOBALS` are the imports a plain PyTorch
state dict needs. The pickle part of lesson 08 (``course.ecosystem`` re-exports every name here).

Example::

    >>> import pickle
    >>> scan_pickle(pickle.dumps({"a": [1, 2]})).safe
    True
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "CALL_OPCODES",
    "IMPORT_OPCODES",
    "PickleFinding",
    "PickleScan",
    "TORCH_TENSOR_GLOBALS",
    "scan_pickle",
]


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
