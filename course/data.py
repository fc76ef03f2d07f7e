"""Offline data sets with fixed splits, and small reference models trained in seconds.

Everything here comes from data bundled with scikit-learn (digits, iris): nothing is ever
downloaded. Trained models are cached on disk under :func:`cache_dir` so that a lesson does not
retrain them on every run; the cache key includes the library versions, the hyperparameters and
a fingerprint of the training data, and a cache file that cannot be read is retrained, never
fatal.

Example::

    from course import data
    split = data.load_digits_split()
    split.X_train.shape, split.X_train.dtype      # ((1347, 64), dtype('float32'))
    pipe = data.train_sklearn_classifier(split)    # StandardScaler + LogisticRegression
    mlp = data.train_torch_mlp(split)              # torch.nn.Sequential, in eval mode
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from course import _capture, _optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no sweep of folders left by killed kernels
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Split",
    "cache_dir",
    "clear_cache",
    "import_tensorflow",
    "load_digits_split",
    "load_iris_split",
    "train_keras_mlp",
    "train_sklearn_classifier",
    "train_torch_cnn",
    "train_torch_mlp",
    "workdir",
]

_DEFAULT_CACHE = Path("~/.cache/onnx-and-beyond")
SKLEARN_KINDS = ("logreg", "random_forest")


def _require(module: str, extra: str) -> Any:
    """Import an optional dependency or say exactly what to install."""
    return _optional.require(module, _optional.extra(extra))


# --------------------------------------------------------------------------------------------
# data sets


@dataclass(frozen=True)
class Split:
    """A fixed train/test split of a small tabular data set.

    Attributes:
        X_train, X_test: float32 feature matrices, one row per sample.
        y_train, y_test: int64 class labels.
        name: the data set's name (``"digits"``, ``"iris"``).
        feature_names, target_names: as given by scikit-learn.

    Example::

        split = load_iris_split()
        split.n_features, split.n_classes      # (4, 3)
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    name: str = "custom"
    feature_names: tuple[str, ...] = field(default=(), repr=False)
    target_names: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for attr in ("X_train", "X_test", "y_train", "y_test"):
            if not isinstance(getattr(self, attr), np.ndarray):
                raise TypeError(
                    f"Split.{attr} must be a numpy array, got {type(getattr(self, attr)).__name__}"
                )
        if self.X_train.ndim != 2 or self.X_test.ndim != 2:
            raise ValueError(
                "Split.X_train and X_test must be 2-D (samples x features), got shapes "
                f"{self.X_train.shape} and {self.X_test.shape}"
            )
        if self.X_train.shape[1] != self.X_test.shape[1]:
            raise ValueError(
                f"X_train has {self.X_train.shape[1]} features but X_test has "
                f"{self.X_test.shape[1]}: both must have the same columns"
            )
        if len(self.X_train) != len(self.y_train) or len(self.X_test) != len(self.y_test):
            raise ValueError(
                "features and labels disagree in length: "
                f"X_train {len(self.X_train)} vs y_train {len(self.y_train)}, "
                f"X_test {len(self.X_test)} vs y_test {len(self.y_test)}"
            )

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of distinct labels over train and test."""
        return int(np.unique(np.concatenate([self.y_train, self.y_test])).size)

    def fingerprint(self) -> str:
        """A short hash of the four arrays: two splits with the same data share it."""
        h = hashlib.sha256()
        for arr in (self.X_train, self.X_test, self.y_train, self.y_test):
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:16]


def _split(X: np.ndarray, y: np.ndarray, seed: int, test_size: float, bunch: Any, name: str):
    from sklearn.model_selection import train_test_split

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=int(seed), stratify=y
    )
    return Split(
        X_train=np.ascontiguousarray(X_train),
        X_test=np.ascontiguousarray(X_test),
        y_train=np.ascontiguousarray(y_train),
        y_test=np.ascontiguousarray(y_test),
        name=name,
        feature_names=tuple(str(n) for n in bunch.feature_names),
        target_names=tuple(str(n) for n in bunch.target_names),
    )


def load_digits_split(seed: int = 0, test_size: float = 0.25) -> Split:
    """The 8x8 handwritten digits bundled with scikit-learn, split with a fixed seed.

    Features are float32 in [0, 1] (pixel intensity / 16), 64 per image; labels are int64 0-9.
    The split is stratified; with the defaults it has 1347 training and 450 test images.

    Example::

        split = load_digits_split()
        images = split.X_test.reshape(-1, 1, 8, 8)    # N x 1 x 8 x 8 for a CNN
    """
    _require("sklearn", "sklearn")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return _split(X, y, seed, test_size, bunch, "digits")


def load_iris_split(seed: int = 0, test_size: float = 0.3) -> Split:
    """Fisher's iris flowers bundled with scikit-learn, split with a fixed seed.

    Features are the four float32 measurements in centimetres (unscaled: a pipeline's scaler
    does that); labels are int64 0-2. With the defaults: 105 training and 45 test flowers.

    Example::

        split = load_iris_split()
        split.feature_names[0]                     # 'sepal length (cm)'
    """
    _require("sklearn", "sklearn")
    from sklearn.datasets import load_iris

    bunch = load_iris()
    X = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    return _split(X, y, seed, test_size, bunch, "iris")


def _check_split(split: Split | None) -> Split:
    if split is None:
        return load_digits_split()
    if not isinstance(split, Split):
        raise TypeError(
            f"split must be a course.data.Split (e.g. load_digits_split()), got "
            f"{type(split).__name__}; wrap your arrays with Split(X_train, X_test, y_train, y_test)"
        )
    return split


# --------------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """The folder where trained models are cached (created if missing).

    ``$COURSE_CACHE_DIR`` when set, else ``~/.cache/onnx-and-beyond``. Deleting it is always
    safe: models are retrained on next use.

    Example::

        import os; os.environ["COURSE_CACHE_DIR"] = "/tmp/course-cache"
        cache_dir()                                # PosixPath('/tmp/course-cache')
    """
    path = Path(os.environ.get("COURSE_CACHE_DIR") or _DEFAULT_CACHE).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_cache() -> int:
    """Delete every cached model file of this module; returns how many were removed.

    Example::

        clear_cache()                              # 0 when nothing was cached
    """
    removed = 0
    for path in cache_dir().glob("model-*"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


# --------------------------------------------------------------------------------------------
# a lesson's scratch folder

_WORKDIR_PREFIX = "onnx-course-"
_WORKDIR_LOCK = ".in-use"
_held_locks: list[Any] = []  # open, locked files: one per workdir of this process


def workdir(name: str) -> Path:
    """A new, empty folder for the files a lesson writes, removed when this Python process ends.

    Lessons 1-8 write their models here. The folder is deleted when the kernel shuts down or
    restarts; a folder left by a process that was killed (kill -9, a crashed kernel) is deleted
    by the next call from any process, as soon as no process holds it.

    Example:

        >>> work = workdir("lesson7")
        >>> work.name.startswith("onnx-course-lesson7-") and not any(work.glob("*.onnx"))
        True
    """
    if not re.fullmatch(r"[A-Za-z0-9_.]{1,40}", name):
        raise ValueError(
            f"workdir name {name!r}: use up to 40 letters, digits, '_' or '.', e.g. 'lesson7'"
        )
    root = Path(tempfile.gettempdir())
    _sweep_workdirs(root)
    path = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{name}-", dir=root))
    lock = open(path / _WORKDIR_LOCK, "w")  # noqa: SIM115  (held open until the process ends)
    if fcntl is not None:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held_locks.append(lock)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _sweep_workdirs(root: Path) -> None:
    """Delete the workdirs no live process holds (their owner was killed before it could).

    A folder younger than a minute is left alone: its owner may not have locked it yet."""
    if fcntl is None:  # pragma: no cover
        return
    for folder in root.glob(f"{_WORKDIR_PREFIX}*"):
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
                continue
            if time.time() - info.st_mtime < 60:
                continue
            with open(folder / _WORKDIR_LOCK) as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a process holds it
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def _versions(*packages: str) -> dict[str, str]:
    out = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for name in ("numpy", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all installed here
            out[name] = "missing"
    return out


def _cache_path(
    kind: str, params: dict[str, Any], split: Split, packages: tuple[str, ...], suffix: str
) -> Path:
    key = json.dumps(
        {
            "kind": kind,
            "params": params,
            "data": split.fingerprint(),
            "versions": _versions(*packages),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / f"model-{kind}-{digest}{suffix}"


def _cached(
    path: Path,
    load: Callable[[Path], Any],
    train: Callable[[], Any],
    save: Callable[[Any, Path], None],
) -> Any:
    """Load ``path`` if it is readable, else train, save atomically and return the result."""
    if path.exists():
        try:
            return load(path)
        except Exception:  # noqa: BLE001 - any unreadable cache file means: retrain
            path.unlink(missing_ok=True)
    model = train()
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save(model, tmp)
        os.replace(tmp, path)
    except OSError:  # pragma: no cover - a read-only cache folder must not stop a lesson
        tmp.unlink(missing_ok=True)
    return model


# --------------------------------------------------------------------------------------------
# scikit-learn


def _sklearn_estimator(kind: str, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "logreg":
        return LogisticRegression(max_iter=1000)
    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=50, max_depth=10, random_state=seed, n_jobs=1)
    raise ValueError(f"kind must be one of {SKLEARN_KINDS}, got {kind!r}")


def train_sklearn_classifier(
    split: Split | None = None, kind: str = "logreg", seed: int = 0
) -> Any:
    """A fitted scikit-learn ``Pipeline(StandardScaler, classifier)``, cached on disk.

    Args:
        split: training data (default: :func:`load_digits_split`).
        kind: ``"logreg"`` (LogisticRegression) or ``"random_forest"`` (50 trees, depth 10).
        seed: random state of the estimators that use one.

    Example::

        pipe = train_sklearn_classifier(load_iris_split(), kind="random_forest")
        pipe.predict_proba(load_iris_split().X_test[:2]).shape    # (2, 3)
    """
    _require("sklearn", "sklearn")
    split = _check_split(split)
    _sklearn_estimator(kind, seed)  # validates kind before touching the cache
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    def train() -> Any:
        pipe = Pipeline([("scaler", StandardScaler()), ("clf", _sklearn_estimator(kind, seed))])
        return pipe.fit(split.X_train, split.y_train)

    def load(path: Path) -> Any:
        with path.open("rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - our own cache file
        if not isinstance(model, Pipeline):
            raise TypeError("cache file does not hold a Pipeline")
        return model

    def save(model: Any, path: Path) -> None:
        with path.open("wb") as fh:
            pickle.dump(model, fh)

    path = _cache_path(f"sklearn-{kind}", {"seed": seed}, split, ("scikit-learn",), ".pkl")
    return _cached(path, load, train, save)


# --------------------------------------------------------------------------------------------
# PyTorch


def _torch_mlp(n_features: int, hidden: int, n_classes: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def _torch_cnn(channels: int, n_classes: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * 4 * 4, n_classes),
    )


@contextlib.contextmanager
def _torch_one_thread() -> Iterator[Any]:
    """torch with one thread and a forked RNG: these models are tiny, and on a small shared
    machine several threads spin against each other (measured here: 0.1 s with one thread,
    several s with two); the fixed seed leaves the caller's RNG untouched."""
    torch = _require("torch", "torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            yield torch
    finally:
        torch.set_num_threads(threads)


def _train_torch(
    build: Callable[[], Any],
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    epochs: int,
    lr: float,
    batch_size: int = 128,
) -> Any:
    with _torch_one_thread() as torch:
        torch.manual_seed(seed)
        model = build()
        generator = torch.Generator().manual_seed(seed)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=generator)
            for start in range(0, len(Xt), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss_fn(model(Xt[idx]), yt[idx]).backward()
                optimizer.step()
        return model.eval()


def _torch_cached(
    kind: str,
    build: Callable[[], Any],
    X: np.ndarray,
    split: Split,
    seed: int,
    params: dict[str, Any],
) -> Any:
    torch = _require("torch", "torch")

    def train() -> Any:
        return _train_torch(build, X, split.y_train, seed, params["epochs"], params["lr"])

    def load(path: Path) -> Any:
        model = build()
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()

    def save(model: Any, path: Path) -> None:
        torch.save(model.state_dict(), path)

    path = _cache_path(kind, {**params, "seed": seed}, split, ("torch",), ".pt")
    return _cached(path, load, train, save)


def train_torch_mlp(
    split: Split | None = None, seed: int = 0, hidden: int = 64, epochs: int = 15
) -> Any:
    """A PyTorch MLP (``Linear-ReLU-Linear-ReLU-Linear``, logits out), trained and cached.

    Input ``N x n_features`` float32, output ``N x n_classes`` logits. Returned in eval mode.
    On the digits split it reaches about 97% test accuracy in a second or two.

    Example::

        import torch
        split = load_digits_split()
        mlp = train_torch_mlp(split)
        mlp(torch.from_numpy(split.X_test[:3])).argmax(1)    # tensor([...])
    """
    _require("torch", "torch")
    split = _check_split(split)
    if hidden < 1 or epochs < 1:
        raise ValueError(f"hidden and epochs must be >= 1, got hidden={hidden}, epochs={epochs}")
    n_features, n_classes = split.n_features, split.n_classes
    return _torch_cached(
        "torch-mlp",
        lambda: _torch_mlp(n_features, hidden, n_classes),
        split.X_train.astype(np.float32),
        split,
        seed,
        {"hidden": hidden, "epochs": epochs, "lr": 5e-3},
    )


def train_torch_cnn(
    split: Split | None = None, seed: int = 0, channels: int = 8, epochs: int = 15
) -> Any:
    """A small PyTorch CNN for 8x8 digits (two 3x3 convolutions, max-pool, linear), cached.

    Input ``N x 1 x 8 x 8`` float32 (``split.X_test.reshape(-1, 1, 8, 8)``), output
    ``N x 10`` logits. Returned in eval mode.

    Example::

        import torch
        split = load_digits_split()
        cnn = train_torch_cnn(split)
        cnn(torch.from_numpy(split.X_test[:2].reshape(-1, 1, 8, 8))).shape   # (2, 10)
    """
    _require("torch", "torch")
    split = _check_split(split)
    if split.n_features != 64:
        raise ValueError(
            f"train_torch_cnn needs 8x8 images (64 features, e.g. load_digits_split()), "
            f"got {split.n_features} features"
        )
    if channels < 1 or epochs < 1:
        raise ValueError(
            f"channels and epochs must be >= 1, got channels={channels}, epochs={epochs}"
        )
    n_classes = split.n_classes
    return _torch_cached(
        "torch-cnn",
        lambda: _torch_cnn(channels, n_classes),
        split.X_train.reshape(-1, 1, 8, 8).astype(np.float32),
        split,
        seed,
        {"channels": channels, "epochs": epochs, "lr": 5e-3},
    )


# --------------------------------------------------------------------------------------------
# TensorFlow / Keras

# what TensorFlow's C++ runtime writes while it loads, and how it is kept off stderr: one owner,
# course._capture (the old private names stay for callers)
_TF_IMPORT_NOISE = _capture.TF_IMPORT_NOISE
_filtered_stderr_fd = _capture.filtered_stderr_fd


def import_tensorflow() -> Any:
    """Import TensorFlow without its start-up log lines on stderr; returns the module.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set) before the import and drops the
    informational lines TensorFlow 2.21 prints while it loads (oneDNN notice, "Could not find
    cuda drivers", CPU feature notice), which ignore that variable. Any other line still reaches
    stderr. Call it before anything imports ``tensorflow`` or ``keras``.

    Example::

        tf = import_tensorflow()
        import keras                                # now quiet: TensorFlow is already loaded
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _filtered_stderr_fd(_TF_IMPORT_NOISE):
        return _require("tensorflow", "tensorflow")


def _import_keras() -> Any:
    import_tensorflow()
    import keras

    return keras


def _keras_mlp(keras: Any, n_features: int, hidden: int, n_classes: int, seed: int) -> Any:
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=(n_features,), name="features")
    x = keras.layers.Dense(
        hidden, activation="relu", kernel_initializer=init(seed=seed), name="hidden"
    )(inputs)
    outputs = keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=init(seed=seed + 1),
        name="probabilities",
    )(x)
    return keras.Model(inputs, outputs, name="keras_mlp")


def train_keras_mlp(
    split: Split | None = None, seed: int = 0, hidden: int = 64, epochs: int = 15
) -> Any:
    """A Keras 3 MLP (``Dense-ReLU``, ``Dense-softmax``: probabilities out), trained and cached.

    Input ``N x n_features`` float32 named ``features``, output ``N x n_classes`` probabilities.
    Weights are initialised from ``seed`` and the data shuffled with NumPy, so training does
    not touch Keras' global random state.

    Example::

        split = load_digits_split()
        model = train_keras_mlp(split)
        model.predict(split.X_test[:2], verbose=0).shape     # (2, 10)
    """
    split = _check_split(split)
    if hidden < 1 or epochs < 1:
        raise ValueError(f"hidden and epochs must be >= 1, got hidden={hidden}, epochs={epochs}")
    keras = _import_keras()
    n_features, n_classes = split.n_features, split.n_classes

    def train() -> Any:
        model = _keras_mlp(keras, n_features, hidden, n_classes, seed)
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        order = np.random.default_rng(seed).permutation(len(split.X_train))
        model.fit(
            split.X_train[order].astype(np.float32),
            split.y_train[order],
            epochs=epochs,
            batch_size=32,
            shuffle=False,
            verbose=0,
        )
        return model

    def load(path: Path) -> Any:
        return keras.saving.load_model(path)

    def save(model: Any, path: Path) -> None:
        model.save(path)

    path = _cache_path(
        "keras-mlp",
        {"hidden": hidden, "epochs": epochs, "seed": seed},
        split,
        ("keras", "tensorflow"),
        ".keras",
    )
    return _cached(path, load, train, save)
