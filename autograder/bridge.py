"""Kernel-side code of the verdict path: values cross between the two kernels only as data.

The grader sends this module's source to both kernels of a submission (it is not imported from
the course: the sandbox cannot see this package) and runs it there as the module
``autograder_bridge``:

- in the *student kernel* S it answers the grader's requests: ``describe`` the names a test
  uses (data, a function, or something that cannot cross), ``call`` a function of the notebook
  with arguments sent as data, ``changed_files`` (files the notebook wrote since the last
  look). Every reply is printed as one line ``NONCE + JSON``. Nothing here is trusted: the
  student's code can replace any of it, which changes only what S answers.
- in the *verdict kernel* T (which runs only the instructor's cells) it turns replies into
  values with a strict decoder (JSON, base64, ``numpy.load(allow_pickle=False)``, protobuf
  parsing of ONNX models): no pickle, no Python of S ever runs in T. Functions of the notebook
  become :class:`StudentFunction` proxies whose calls travel over the kernel's stdin channel to
  the grader, which runs them in S.

What crosses: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, tuples,
lists, dicts (any keys of these types), sets, numpy arrays (not of objects) and scalars, ONNX
``ModelProto`` (serialized), TorchScript modules (``torch.jit.save``'s archive, read by torch's
C++ loader: no Python pickle; a graph T runs with its runtime, as an ONNX model with
onnxruntime), torch tensors (as numpy), ``pathlib`` paths. Subclasses are sent
as their base type (an ``int`` whose ``==`` always says yes arrives as a plain ``int``).

Example (the codec alone, as both kernels use it):
    >>> import numpy as np
    >>> wire = encode({"n": 3, "w": np.arange(3.0), "t": (1, "a")})
    >>> decode(wire)["w"].tolist(), decode(wire)["t"]
    ([0.0, 1.0, 2.0], (1, 'a'))
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys

#: Largest encoded value (characters) that crosses in one message.
MAX_WIRE = 64 * 1024 * 1024
#: Largest file that is copied from S to T, and all of them together per look.
MAX_FILE = 16 * 1024 * 1024
#: File kinds never copied into T (T never imports from its working folder anyway).
NO_COPY = (".py", ".pyc", ".pyo", ".pth", ".so", ".pyd", ".dylib", ".ipynb")
REQUEST = "AUTOGRADER-BRIDGE-REQUEST:"
MAX_DEPTH = 64


_TORCH_AS_INT = {"bfloat16": "int16", "float8_e4m3fn": "int8", "float8_e5m2": "int8"}
_TORCH_DTYPES = {
    *_TORCH_AS_INT,
    *("float16", "float32", "float64", "complex64", "complex128", "bool"),
    *("uint8", "int8", "int16", "int32", "int64"),
}


class Unencodable(TypeError):
    """A value that cannot cross between the kernels as data."""


class NotData(ValueError):
    """A message that does not follow the wire format (refused, never partly decoded)."""


# -- the codec ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _npy(array) -> str:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return _b64(buf.getvalue())


def encode(value, ref=None, depth: int = 0):
    """A JSON-able form of ``value``; ``ref(value)`` may name an object the other side has."""
    if depth > MAX_DEPTH:
        raise Unencodable("nested too deeply")
    if value is None or isinstance(value, bool):
        return value if value is None else bool(value)
    if isinstance(value, int):
        return {"$int": str(int(value))} if abs(int(value)) > 2**53 else int(value)
    if isinstance(value, float):
        f = float(value)
        return f if math.isfinite(f) else {"$float": repr(f)}
    if isinstance(value, complex):
        return {"$complex": [float(value.real), float(value.imag)]}
    if isinstance(value, str):
        return {"$str": str(value)} if str(value).startswith("$") else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": _b64(bytes(value))}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, ref, depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, ref, depth + 1) for v in value]
    if isinstance(value, dict):
        return {
            "$dict": [
                [encode(k, ref, depth + 1), encode(v, ref, depth + 1)] for k, v in value.items()
            ]
        }
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode(v, ref, depth + 1) for v in value]}
    module = type(value).__module__ or ""
    if module.startswith("numpy"):
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise Unencodable("a numpy array of Python objects")
            return {"$ndarray": _npy(np.ascontiguousarray(value))}
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return {"$npscalar": _npy(np.asarray(value))}
    if module.startswith("onnx") and type(value).__name__ == "ModelProto":
        return {"$onnx": _b64(value.SerializeToString())}
    if module.startswith("torch") and type(value).__name__ in ("Tensor", "Parameter"):
        tensor = value.detach().cpu()
        dtype = str(tensor.dtype).replace("torch.", "")
        if dtype in _TORCH_AS_INT:  # numpy has no such dtype: the bits travel as integers
            import torch

            tensor = tensor.view(getattr(torch, _TORCH_AS_INT[dtype]))
        return {"$torch": [_npy(tensor.contiguous().numpy()), dtype]}
    if module == "pathlib" or module.startswith("pathlib."):
        return {"$path": os.fspath(value)}
    if module.startswith("onnxruntime") and type(value).__name__ == "InferenceSession":
        return {"$ortsession": _session_wire(value)}
    if module.startswith("torch.jit") and _is_script_module(value):
        import warnings

        import torch

        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():  # nothing of the grader's reaches stderr
                warnings.simplefilter("ignore")
                torch.jit.save(value, buf)
        except Exception as exc:
            raise Unencodable(f"a TorchScript module that cannot be saved ({exc})") from None
        return {"$torchscript": _b64(buf.getvalue())}
    if ref is not None:
        found = ref(value)
        if found is not None:
            return found
    raise Unencodable(f"an object of type {module}.{type(value).__qualname__}")


#: SessionOptions that cross with an onnxruntime session (numbers, flags, enums as ints)
_SESSION_OPTIONS = {
    "graph_optimization_level": "GraphOptimizationLevel",
    "execution_mode": "ExecutionMode",
    "execution_order": "ExecutionOrder",
    "intra_op_num_threads": None,
    "inter_op_num_threads": None,
    "log_severity_level": None,
    "log_verbosity_level": None,
    "enable_cpu_mem_arena": None,
    "enable_mem_pattern": None,
    "enable_mem_reuse": None,
}


def _session_wire(session) -> dict:
    """An onnxruntime session as data: its model's bytes, the providers it runs on and its
    options (no custom-op library, no file it would write)."""
    model = getattr(session, "_model_bytes", None)
    if model is None:
        path = getattr(session, "_model_path", None)
        try:
            if not path or os.path.getsize(path) > MAX_WIRE // 2:
                raise OSError("no model file, or too large")
            with open(path, "rb") as fh:
                model = fh.read()
        except OSError as exc:
            raise Unencodable(
                f"an onnxruntime session whose model cannot be read ({exc})"
            ) from None
    so = session.get_session_options()
    options = {}
    for name, enum in _SESSION_OPTIONS.items():
        value = getattr(so, name, None)
        if value is not None:
            options[name] = int(value) if enum else value
    return {
        "model": _b64(bytes(model)),
        "providers": [str(p) for p in session.get_providers()],
        "options": options,
    }


def _session_from_wire(body):
    """Rebuild a session in T: the same model, providers (those it really ran on, all present
    here) and options."""
    import onnxruntime as ort

    if type(body) is not dict or type(body.get("options")) is not dict:
        raise NotData("not a session")
    so = ort.SessionOptions()
    for name, value in body["options"].items():
        if name not in _SESSION_OPTIONS or type(value) not in (int, bool):
            raise NotData(f"unexpected session option {name!r}")
        enum = _SESSION_OPTIONS[name]
        setattr(so, name, getattr(ort, enum)(value) if enum else value)
    providers = body.get("providers")
    if type(providers) is not list or not all(type(p) is str for p in providers):
        raise NotData("providers are not a list of names")
    known = set(ort.get_available_providers())
    return ort.InferenceSession(
        _unb64(body.get("model")), so, providers=[p for p in providers if p in known]
    )


def _is_script_module(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.jit.ScriptModule)


def _unb64(text) -> bytes:
    if type(text) is not str:
        raise NotData("base64 payload is not a string")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _unnpy(text):
    import numpy as np

    array = np.load(io.BytesIO(_unb64(text)), allow_pickle=False)
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise NotData("not a plain numpy array")
    return array


def decode(wire, deref=None, depth: int = 0, unpickle: bool = False):
    """The value of an encoded form; only the types listed in the module's docstring.

    ``unpickle`` is for S only, which may unpickle what T (the instructor's code) sent; T and
    the grader never unpickle anything.
    """
    if depth > MAX_DEPTH:
        raise NotData("nested too deeply")
    t = type(wire)
    if wire is None or t in (bool, int, float, str):
        return wire
    if t is list:
        return [decode(v, deref, depth + 1, unpickle) for v in wire]
    if t is not dict or len(wire) != 1:
        raise NotData(f"unexpected {t.__name__} in the wire format")
    ((tag, body),) = wire.items()
    if tag == "$int" and type(body) is str:
        return int(body)
    if tag == "$float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "$complex" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if tag == "$str" and type(body) is str:
        return body
    if tag == "$bytes":
        return _unb64(body)
    if tag in ("$tuple", "$set") and type(body) is list:
        items = [decode(v, deref, depth + 1, unpickle) for v in body]
        return tuple(items) if tag == "$tuple" else set(items)
    if tag == "$dict" and type(body) is list:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise NotData("a dict entry is not a pair")
            out[decode(pair[0], deref, depth + 1, unpickle)] = decode(
                pair[1], deref, depth + 1, unpickle
            )
        return out
    if tag == "$ndarray":
        return _unnpy(body)
    if tag == "$npscalar":
        return _unnpy(body)[()]
    if tag == "$onnx":
        import onnx

        model = onnx.ModelProto()
        model.ParseFromString(_unb64(body))
        return model
    if tag == "$torch" and type(body) is list and len(body) == 2 and body[1] in _TORCH_DTYPES:
        import torch

        tensor = torch.from_numpy(_unnpy(body[0]).copy())
        if body[1] in _TORCH_AS_INT:
            tensor = tensor.view(getattr(torch, body[1]))
        return tensor
    if tag == "$ortsession":
        return _session_from_wire(body)
    if tag == "$torchscript":
        # a TorchScript archive: TorchScript code and tensors, read by torch's own C++ loader
        # (no Python pickle, no Python code), run by its interpreter like an ONNX model by
        # onnxruntime
        import warnings

        import torch

        with warnings.catch_warnings():  # a test cell that writes to stderr scores 0
            warnings.simplefilter("ignore")
            return torch.jit.load(io.BytesIO(_unb64(body)), map_location="cpu")
    if tag == "$path" and type(body) is str:
        import pathlib

        return pathlib.Path(body)
    if tag == "$ref" and type(body) is str and deref is not None:
        return deref(body)
    if tag == "$pickle" and unpickle:
        import pickle

        return pickle.loads(_unb64(body))
    if tag == "$pickle-classes" and unpickle and type(body) is list and len(body) == 2:
        # classes the instructor's test cells defined (T's __main__), defined here first
        import pickle

        ns = _user_ns()
        for pair in body[0]:
            if type(pair) is not list or len(pair) != 2 or not all(type(p) is str for p in pair):
                raise NotData("a class is not a (name, source) pair")
            name, source = pair
            if name not in ns:  # the notebook's own class of that name is kept
                exec(compile(source, _cached_source(source), "exec"), ns)  # noqa: S102
        return pickle.loads(_unb64(body[1]))
    raise NotData(f"unknown tag {tag!r}")


def _cached_source(source: str) -> str:
    """A file name under which ``source`` is in ``linecache``, as IPython caches a cell's code
    (``torch.jit.script`` and ``inspect`` read a class's source from there)."""
    import linecache

    try:
        return get_ipython().compile.cache(source)  # noqa: F821
    except Exception:
        name = f"<autograder-class-{abs(hash(source))}>"
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        return name


def dumps(value, ref=None) -> str:
    text = json.dumps(encode(value, ref), allow_nan=False, separators=(",", ":"))
    if len(text) > MAX_WIRE:
        raise Unencodable(f"{len(text) / 2**20:.0f} MB once encoded (limit {MAX_WIRE // 2**20} MB)")
    return text


def loads(text: str, deref=None):
    if type(text) is not str or len(text) > MAX_WIRE:
        raise NotData("message missing or too large")
    return decode(json.loads(text), deref)


# -- the student kernel (S): answer the grader ------------------------------------------------


def _user_ns() -> dict:
    return get_ipython().user_ns  # noqa: F821  (IPython's global in a kernel)


def _reply(nonce: str, payload: dict) -> None:
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        text = json.dumps({"error": f"reply not encodable: {exc}"})
    sys.stdout.write(nonce + text + "\n")
    sys.stdout.flush()


def _describe_one(ns: dict, name: str) -> dict:
    if name not in ns:
        return {"kind": "missing"}
    value = ns[name]
    if callable(value) and not isinstance(value, type(None)):
        module = type(value).__module__ or ""
        if not (module.startswith("onnx") or module.startswith("numpy")):
            return {"kind": "function"}
    try:
        return {"kind": "data", "wire": encode(value)}
    except Unencodable as exc:
        return {"kind": "opaque", "why": str(exc)}
    except Exception as exc:  # a broken __getattr__ of the notebook's object
        return {"kind": "opaque", "why": f"{type(exc).__name__} while reading it"}


def describe(nonce: str, names: list, since: float | None = None) -> None:
    """Reply what each name is in the notebook's namespace (and files written since ``since``)."""
    ns = _user_ns()
    out = {}
    total = 0
    for name in names:
        entry = _describe_one(ns, name)
        size = len(json.dumps(entry.get("wire"))) if "wire" in entry else 0
        if total + size > MAX_WIRE:
            entry = {"kind": "opaque", "why": "too large to send (all values together)"}
        total += size
        out[name] = entry
    files = _changed_files(since) if since is not None else {}
    _reply(nonce, {"names": out, "files": files, "now": _now()})


def _now() -> float:
    import time

    return time.time()


#: objects the notebook's functions returned that cannot cross as data, by handle: they stay
#: here and T calls their methods (:class:`StudentObject`)
_HANDLES: dict = {}


def _deref(name: str):
    if name.startswith("$handle:"):
        key, _, attr = name[len("$handle:") :].partition(".")
        if key not in _HANDLES:
            raise NameError(f"no object {key} in the notebook")
        return getattr(_HANDLES[key], attr) if attr else _HANDLES[key]
    ns = _user_ns()
    if name not in ns:
        raise NameError(f"name {name!r} is not defined in the notebook")
    return ns[name]


def call(nonce: str, request: str) -> None:
    """Call a function of the notebook with decoded arguments; reply its result as data."""
    import contextlib

    try:
        req = json.loads(request)
        fn = _deref(req["name"])
        args = decode(req["args"], _deref, unpickle=True)
        kwargs = decode(req["kwargs"], _deref, unpickle=True)
        paths = [a for a in list(args) + list(kwargs.values()) if type(a).__name__.endswith("Path")]
        for path in paths:
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
        import pathlib

        for entry in req.get("paths") or []:  # T's files at the paths it passes (its models...)
            target = pathlib.Path(str(entry["path"]))
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                if entry.get("data") is not None and not target.exists():
                    target.write_bytes(_unb64(entry["data"]))
            paths.append(target)
    except Exception as exc:
        _reply(nonce, {"error": f"the request could not be read in the notebook: {exc!r}"[:500]})
        return
    out, err = io.StringIO(), io.StringIO()
    result: dict = {}
    value = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            value = fn(*args, **kwargs)
        result["value"] = dumps(value)
    except Unencodable as exc:
        result["unencodable"] = str(exc)
        key = str(len(_HANDLES) + 1)
        _HANDLES[key] = value
        result["handle"] = key
    except BaseException as exc:  # KeyboardInterrupt too: the grader interrupted a slow call
        result["raised"] = type(exc).__name__
        result["builtin"] = type(exc).__module__ == "builtins"
        result["message"] = str(exc)[:4000]
    result["stdout"] = out.getvalue()[-20000:]
    result["stderr"] = err.getvalue()[-20000:]
    files = {}
    total = 0
    for path in paths:
        try:
            if path.is_file() and not path.is_symlink():
                size = path.stat().st_size
                if size <= MAX_FILE and total + size <= MAX_WIRE // 2:
                    files[os.path.abspath(path)] = _b64(path.read_bytes())
                    total += size
        except OSError:
            pass
    result["files"] = files
    _reply(nonce, result)


def _changed_files(since: float) -> dict:
    """Regular files under the working folder modified after ``since`` (relative paths)."""
    root = os.getcwd()
    files, total = {}, 0
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if not os.path.isfile(full) or os.path.islink(full) or st.st_mtime <= since:
                continue
            if name.endswith(NO_COPY) or st.st_size > MAX_FILE or total + st.st_size > MAX_FILE * 4:
                continue
            try:
                with open(full, "rb") as fh:
                    files[os.path.relpath(full, root)] = _b64(fh.read(MAX_FILE + 1)[:MAX_FILE])
                total += st.st_size
            except OSError:
                pass
    return files


# -- the verdict kernel (T): values and proxies -------------------------------------------------


class StudentError(Exception):
    """The notebook's function raised an exception that is not one of Python's own."""


class NotTransferable(AssertionError):
    """A value of the notebook that cannot be checked in the grader's kernel."""


def _raw_input(prompt: str) -> str:
    kernel = get_ipython().kernel  # noqa: F821
    return kernel.raw_input(prompt)


class StudentFunction:
    """A function of the notebook: calls run in the student's kernel, results come back as data."""

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the notebook>"

    def __call__(self, *args, **kwargs):
        name = self.__name__
        try:
            request = {
                "name": name,
                "args": encode(tuple(args), _ref_of),
                "kwargs": encode(dict(kwargs), _ref_of),
            }
        except Unencodable as exc:
            raise NotTransferable(
                f"{name}(...) runs in the notebook's kernel; an argument cannot be sent there: "
                f"{exc}"
            ) from None
        request["paths"] = _paths_for_student(list(args) + list(kwargs.values()))
        answer = _raw_input(REQUEST + json.dumps(request, separators=(",", ":")))
        reply = json.loads(answer)
        if "error" in reply:
            raise NotTransferable(f"{name}(...): {reply['error']}")
        if reply.get("stdout"):
            sys.stdout.write(reply["stdout"])
        if reply.get("stderr"):
            sys.stderr.write(reply["stderr"])
        _store_files(reply.get("files") or {}, absolute=True)
        if "raised" in reply:
            message = f"{reply['message']}"
            import builtins

            cls = getattr(builtins, reply["raised"], None) if reply.get("builtin") else None
            if isinstance(cls, type) and issubclass(cls, Exception) and cls is not StopIteration:
                try:
                    exc = cls(message)
                except Exception:
                    exc = StudentError(f"{reply['raised']}: {message}")
            else:
                exc = StudentError(f"{reply['raised']}: {message}")
            raise exc
        if type(reply.get("handle")) is str and type(reply.get("unencodable")) is str:
            return StudentObject(reply["handle"], reply["unencodable"], name)
        if "unencodable" in reply:
            raise NotTransferable(
                f"the value returned by {name}(...) cannot be checked by the grader: it is "
                f"{reply['unencodable']} (return numbers, strings, arrays, lists, dicts or ONNX "
                "models)"
            )
        return loads(reply["value"])


class StudentObject:
    """An object a function of the notebook returned that cannot cross as data (an instance of
    the student's class, an iterator): it stays in S, and T calls its methods there, with
    arguments and results as data (or as another such object). Its attributes are methods:
    ``obj.get_next()`` runs in S; plain attributes cannot be read."""

    def __init__(self, handle: str, what: str, origin: str):
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_what", what)
        object.__setattr__(self, "_origin", origin)

    def _member(self, attr: str = "") -> StudentFunction:
        handle = object.__getattribute__(self, "_handle")
        return StudentFunction(f"$handle:{handle}.{attr}" if attr else f"$handle:{handle}")

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._member(attr)

    def __call__(self, *args, **kwargs):
        return self._member()(*args, **kwargs)

    def _special(self, attr: str, *args):
        try:
            return self._member(attr)(*args)
        except NotTransferable as exc:
            if "has no attribute" in str(exc):  # as Python says of a missing special method
                raise TypeError(f"{self!r} has no {attr}") from None
            raise

    def __len__(self):
        return self._special("__len__")

    def __getitem__(self, key):
        return self._special("__getitem__", key)

    def __iter__(self):
        return self._special("__iter__")

    def __next__(self):
        try:
            return self._member("__next__")()
        except StudentError as exc:
            if str(exc).startswith("StopIteration"):
                raise StopIteration from None
            raise

    def __repr__(self) -> str:
        origin = object.__getattribute__(self, "_origin")
        return f"<{object.__getattribute__(self, '_what')}, returned by {origin}(...)>"


def _paths_for_student(values: list) -> list:
    """Arguments that name a path in T's working folder or /tmp (a ``Path``, or a string that
    names an existing file or folder's child): S gets the folder, and the file when T has it
    (up to 16 MB), so a function given the path of a model the lesson wrote can open it."""
    out, total = [], 0
    roots = (os.getcwd() + os.sep, "/tmp/")
    for value in values:
        if type(value).__name__.endswith("Path"):
            text = os.fspath(value)
        elif isinstance(value, str) and 0 < len(value) < 4096 and "\n" not in value:
            text = value
            if not (os.path.exists(text) or os.path.isdir(os.path.dirname(text) or ".")):
                continue
            if not os.path.isabs(text) and not os.path.exists(text):
                continue
        else:
            continue
        full = os.path.abspath(text)
        if not full.startswith(roots):
            continue
        entry = {"path": full, "data": None}
        try:
            if os.path.isfile(full) and not os.path.islink(full):
                size = os.path.getsize(full)
                if size <= MAX_FILE and total + size <= MAX_WIRE // 4:
                    with open(full, "rb") as fh:
                        entry["data"] = _b64(fh.read())
                    total += size
        except OSError:
            pass
        out.append(entry)
    return out


class Unavailable:
    """Stands for a variable of the notebook that cannot cross as data; any use fails clearly."""

    def __init__(self, name: str, why: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(
            self,
            "_why",
            f"the notebook's variable {name!r} cannot be checked by the grader: it is {why}",
        )

    def _fail(self, *args, **kwargs):
        raise NotTransferable(object.__getattribute__(self, "_why"))

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        self._fail()

    __call__ = __getitem__ = __iter__ = __len__ = __bool__ = _fail
    __eq__ = __lt__ = __gt__ = __le__ = __ge__ = __add__ = __mul__ = __float__ = __int__ = _fail

    def __repr__(self) -> str:
        return f"<unavailable: {object.__getattribute__(self, '_why')}>"


_SYNCED: set[str] = set()
_PROTECTED: set[str] = set()


def _ref_of(value):
    """How T sends an argument that is not data: a function of the notebook by its name; an
    object of T pickled (S may unpickle what the instructor's code made); else a reference to
    S's object of the same global name (an onnxruntime session cannot be pickled)."""
    if isinstance(value, StudentFunction):
        return {"$ref": value.__name__}
    if isinstance(value, StudentObject):  # S's own object, passed back to S
        return {"$ref": "$handle:" + object.__getattribute__(value, "_handle")}
    if isinstance(value, Unavailable):  # S's own object of that name, passed back to S
        return {"$ref": object.__getattribute__(value, "_name")}
    try:
        data, classes = _pickled(value)
    except Unencodable:
        raise
    except Exception:
        data, classes = None, []
    sources = [[c.__name__, src] for c in classes if (src := _class_source(c)) is not None]
    if data is not None and not sources:
        return {"$pickle": _b64(data)}
    if data is not None:
        return {"$pickle-classes": [sources, _b64(data)]}
    for name, obj in list(_user_ns().items()):
        if obj is value and not name.startswith("_"):
            return {"$ref": name}
    return None


def _pickled(value) -> tuple[bytes, list]:
    """Pickle of ``value`` and the classes of T's ``__main__`` it refers to (the instructor's
    test cells may define classes the notebook's kernel does not have)."""
    import pickle

    found: list = []

    class _Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, type) and obj.__module__ == "__main__" and obj not in found:
                found.append(obj)
            return NotImplemented

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buf.getvalue(), found


def _class_source(cls) -> str | None:
    """The source of a class an instructor's cell defined, from IPython's cell cache (None when
    not found: S resolves the class by name); never a class written between hidden-test markers
    (hidden tests never reach S)."""
    import ast
    import linecache

    files = {
        f.__code__.co_filename
        for f in vars(cls).values()
        if hasattr(f, "__code__") and hasattr(f.__code__, "co_filename")
    }
    for filename in files:
        text = "".join(linecache.getlines(filename))
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                lines = text.splitlines()
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                hidden = False
                for line in lines[: node.end_lineno]:
                    if "BEGIN HIDDEN TESTS" in line:
                        hidden = True
                    elif "END HIDDEN TESTS" in line:
                        hidden = False
                if hidden or any("HIDDEN TESTS" in ln for ln in lines[start - 1 : node.end_lineno]):
                    raise Unencodable(f"an object of {cls.__name__}, a class of a hidden test")
                return "\n".join(lines[start - 1 : node.end_lineno]) + "\n"
    return None


def setup_verdict_kernel() -> None:
    """T never imports from its working folder (files of S are copied there)."""
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    # T's narrative outputs are thrown away and its tests are judged by errors: render figures
    # and rich outputs as text only (no PNG rendering of the lesson's plots)
    get_ipython().display_formatter.active_types = ["text/plain"]  # noqa: F821
    for dirpath, _dirs, names in os.walk(cwd):
        for name in names:
            _PROTECTED.add(os.path.abspath(os.path.join(dirpath, name)))


def _store_files(files: dict, absolute: bool = False) -> list:
    """Write files of S into T: never over a file T had before (data, its own outputs)."""
    refused = []
    cwd = os.getcwd()
    allowed = (cwd + os.sep, "/tmp/")
    for rel, text in files.items():
        if type(rel) is not str:
            continue
        path = os.path.abspath(os.path.join(cwd, rel))
        real_parent = os.path.realpath(os.path.dirname(path))
        if (
            not (path.startswith(allowed) and (real_parent + os.sep).startswith(allowed))
            or path.endswith(NO_COPY)
            or path in _PROTECTED
            or (os.path.lexists(path) and path not in _SYNCED)
            or os.path.islink(path)
        ):
            refused.append(rel)
            continue
        try:
            data = _unb64(text)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            _SYNCED.add(path)
        except (OSError, NotData):
            refused.append(rel)
    return refused


def bind(answer: str) -> None:
    """Bind the notebook's names a cell uses, from S's ``describe`` reply (and its files).

    S's answer always wins, even over a value T's own cells gave the name: a value that cannot
    cross becomes a placeholder, a missing one is removed (a NameError, as in nbgrader).
    """
    ns = _user_ns()
    reply = json.loads(answer)
    _store_files(reply.get("files") or {})
    for name, entry in (reply.get("names") or {}).items():
        kind = entry.get("kind")
        if kind == "function":
            ns[name] = StudentFunction(name)
        elif kind == "data":
            try:
                ns[name] = decode(entry["wire"])
            except (NotData, ValueError, TypeError) as exc:
                ns[name] = Unavailable(name, f"malformed data ({exc})")
        elif kind == "opaque":
            ns[name] = Unavailable(name, str(entry.get("why")))
        else:
            ns.pop(name, None)
