"""course.data: fixed offline splits, reference models that learn, a cache that survives damage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from fixtures import course_models as cm

from course import data


@pytest.fixture(autouse=True)
def _private_cache():
    with cm.course_cache():
        yield


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == y))


# -- splits ----------------------------------------------------------------------------------


def test_digits_split_is_float32_in_unit_range_and_fixed():
    a, b = data.load_digits_split(), data.load_digits_split()
    assert a.X_train.shape == (1347, 64), (
        f"expected 1347 x 64 training images, got {a.X_train.shape}"
    )
    assert a.X_test.shape == (450, 64), f"expected 450 x 64 test images, got {a.X_test.shape}"
    assert a.X_train.dtype == np.float32, f"expected float32 features, got {a.X_train.dtype}"
    assert a.y_train.dtype == np.int64, f"expected int64 labels, got {a.y_train.dtype}"
    lo, hi = float(a.X_train.min()), float(a.X_train.max())
    assert lo == 0.0 and hi == 1.0, f"expected features scaled to [0, 1], got [{lo}, {hi}]"
    assert np.array_equal(a.X_test, b.X_test), "expected the same split for the same seed"
    assert a.fingerprint() == b.fingerprint(), "expected equal fingerprints for equal splits"
    assert a.n_features == 64 and a.n_classes == 10, (
        f"expected 64 features and 10 classes, got {a.n_features} and {a.n_classes}"
    )
    other = data.load_digits_split(seed=1)
    assert not np.array_equal(a.X_test, other.X_test), "expected another split for seed=1"
    assert a.fingerprint() != other.fingerprint(), "expected fingerprints to differ by seed"
    counts = np.bincount(a.y_test)
    assert counts.min() >= 43, f"expected a stratified test set (>= 43 per class), got {counts}"


def test_iris_split_keeps_centimetres():
    split = data.load_iris_split()
    assert split.X_train.shape == (105, 4) and split.X_test.shape == (45, 4), (
        f"expected 105/45 flowers with 4 features, got {split.X_train.shape}, {split.X_test.shape}"
    )
    assert split.X_train.dtype == np.float32, f"expected float32, got {split.X_train.dtype}"
    assert split.X_train.max() > 1.0, "expected unscaled measurements in cm"
    assert split.feature_names[0] == "sepal length (cm)", f"got {split.feature_names[0]!r}"
    assert split.target_names == ("setosa", "versicolor", "virginica"), split.target_names
    assert split.name == "iris", f"expected name 'iris', got {split.name!r}"


def test_split_rejects_bad_arrays():
    X, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="numpy array"):
        data.Split([[0.0]], X, y, y)
    with pytest.raises(ValueError, match="2-D"):
        data.Split(np.zeros(4, np.float32), X, y, y)
    with pytest.raises(ValueError, match="same columns"):
        data.Split(X, np.zeros((4, 3), np.float32), y, y)
    with pytest.raises(ValueError, match="disagree in length"):
        data.Split(X, X, y[:3], y)
    with pytest.raises(TypeError, match="seed must be an int"):
        data.load_digits_split(seed="0")
    with pytest.raises(TypeError, match="course.data.Split"):
        data.train_sklearn_classifier((X, y))


# -- cache ---------------------------------------------------------------------------------


def test_cache_dir_follows_env_and_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c", f"got {data.cache_dir()}"
    assert (tmp_path / "c").is_dir(), "expected cache_dir() to create the folder"
    monkeypatch.delenv("COURSE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    want = tmp_path / "home" / ".cache" / "onnx-and-beyond"
    assert data.cache_dir() == want, f"expected {want}, got {data.cache_dir()}"


def test_sklearn_classifier_learns_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    split = cm.digits()
    pipe = data.train_sklearn_classifier(split)
    acc = _accuracy(pipe.predict(split.X_test), split.y_test)
    assert acc > 0.93, f"expected > 93% test accuracy on digits, got {acc:.1%}"
    assert [name for name, _ in pipe.steps] == ["scaler", "clf"], f"got {pipe.steps}"
    files = list(tmp_path.glob("model-sklearn-logreg-*.pkl"))
    assert len(files) == 1, f"expected one cached pipeline, got {files}"
    stamp = files[0].stat().st_mtime_ns
    again = data.train_sklearn_classifier(split)
    assert files[0].stat().st_mtime_ns == stamp, "expected the cached file to be reused"
    assert np.array_equal(again.predict_proba(split.X_test), pipe.predict_proba(split.X_test))
    forest = data.train_sklearn_classifier(cm.iris(), kind="random_forest")
    acc = _accuracy(forest.predict(cm.iris().X_test), cm.iris().y_test)
    assert acc > 0.85, f"expected > 85% on iris with a random forest, got {acc:.1%}"
    with pytest.raises(ValueError, match="kind must be one of"):
        data.train_sklearn_classifier(split, kind="xgboost")
    assert data.clear_cache() == 2, "expected clear_cache to remove the two cached pipelines"
    assert not list(tmp_path.glob("model-*")), "expected an empty cache after clear_cache"


def test_corrupt_cache_files_are_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    split = cm.iris()
    first = data.train_sklearn_classifier(split)
    (path,) = tmp_path.glob("model-sklearn-*")
    path.write_bytes(b"\x00not a pickle")
    again = data.train_sklearn_classifier(split)
    assert np.array_equal(again.predict(split.X_test), first.predict(split.X_test)), (
        "expected the retrained pipeline to predict like the original"
    )
    assert path.read_bytes()[:1] != b"\x00", "expected the corrupt file to be replaced"
    # a pickle of the wrong type is also rejected
    import pickle

    path.write_bytes(pickle.dumps({"not": "a pipeline"}))
    assert hasattr(data.train_sklearn_classifier(split), "predict_proba")

    mlp = data.train_torch_mlp(cm.digits(), epochs=2)
    (pt,) = tmp_path.glob("model-torch-mlp-*.pt")
    pt.write_bytes(b"garbage")
    again_mlp = data.train_torch_mlp(cm.digits(), epochs=2)
    import torch

    x = torch.from_numpy(cm.digits().X_test[:5])
    with torch.no_grad():
        assert torch.equal(mlp(x), again_mlp(x)), "expected retraining to be deterministic"


# -- PyTorch ---------------------------------------------------------------------------------


def test_torch_models_learn_in_eval_mode():
    import torch

    split = cm.digits()
    mlp, cnn = cm.torch_mlp(), cm.torch_cnn()
    assert not mlp.training and not cnn.training, "expected models returned in eval mode"
    with torch.no_grad():
        logits = mlp(torch.from_numpy(split.X_test))
        cnn_logits = cnn(torch.from_numpy(split.X_test.reshape(-1, 1, 8, 8)))
    assert logits.shape == (450, 10), f"expected 450 x 10 logits, got {tuple(logits.shape)}"
    acc_mlp = _accuracy(logits.argmax(1).numpy(), split.y_test)
    acc_cnn = _accuracy(cnn_logits.argmax(1).numpy(), split.y_test)
    assert acc_mlp > 0.93, f"expected the MLP > 93% on digits, got {acc_mlp:.1%}"
    assert acc_cnn > 0.93, f"expected the CNN > 93% on digits, got {acc_cnn:.1%}"


def test_torch_training_leaves_global_state_alone(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    data.train_torch_mlp(cm.iris(), hidden=8, epochs=2)
    got = torch.rand(3)
    assert torch.equal(want, got), "expected the caller's torch RNG stream to be unchanged"
    assert torch.get_num_threads() == threads, "expected the thread count restored"
    files = sorted(p.name for p in tmp_path.glob("model-torch-mlp-*"))
    data.train_torch_mlp(cm.iris(), hidden=16, epochs=2)
    files2 = sorted(p.name for p in tmp_path.glob("model-torch-mlp-*"))
    assert len(files2) == len(files) + 1, "expected other hyperparameters to use another file"


def test_torch_models_reject_bad_arguments():
    with pytest.raises(ValueError, match="8x8 images"):
        data.train_torch_cnn(cm.iris())
    with pytest.raises(ValueError, match=">= 1"):
        data.train_torch_mlp(cm.iris(), hidden=0)
    with pytest.raises(ValueError, match=">= 1"):
        data.train_torch_cnn(cm.digits(), epochs=0)


# -- Keras ---------------------------------------------------------------------------------


def test_keras_mlp_learns_and_reloads(tmp_path, monkeypatch):
    split = cm.digits()
    model = cm.keras_mlp()
    probs = np.asarray(model.predict(split.X_test, verbose=0))
    assert probs.shape == (450, 10), f"expected 450 x 10 probabilities, got {probs.shape}"
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5), "expected softmax rows summing to 1"
    acc = _accuracy(probs.argmax(1), split.y_test)
    assert acc > 0.93, f"expected > 93% on digits, got {acc:.1%}"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    small = data.train_keras_mlp(cm.iris(), hidden=8, epochs=2)
    (path,) = tmp_path.glob("model-keras-mlp-*.keras")
    reloaded = data.train_keras_mlp(cm.iris(), hidden=8, epochs=2)
    x = cm.iris().X_test
    assert np.allclose(small.predict(x, verbose=0), reloaded.predict(x, verbose=0)), (
        "expected the reloaded Keras model to predict as the trained one"
    )
    path.write_bytes(b"PK\x03\x04broken")
    retrained = data.train_keras_mlp(cm.iris(), hidden=8, epochs=2)
    assert np.allclose(small.predict(x, verbose=0), retrained.predict(x, verbose=0), atol=1e-4), (
        "expected retraining with the same seed to give the same model"
    )
    with pytest.raises(ValueError, match=">= 1"):
        data.train_keras_mlp(cm.iris(), epochs=0)


def test_filtered_stderr_keeps_unknown_lines(capfd):
    with data._filtered_stderr_fd(("known noise",)):
        os.write(2, b"known noise: oneDNN\nsomething real\n")
    err = capfd.readouterr().err
    assert "something real" in err, f"expected unknown lines re-emitted, got {err!r}"
    assert "known noise" not in err, f"expected the named noise dropped, got {err!r}"
    assert data.import_tensorflow() is sys.modules["tensorflow"], "expected the cached module"


# -- a lesson's scratch folder ----------------------------------------------------------------

_HOLD = """
import sys, time
from course import data
work = data.workdir("lesson07")
(work / "model.onnx").write_bytes(b"x" * 1000)
print(work, flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


def _child(tmp_path, mode: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def _age(folder) -> None:
    old = time.time() - 3600
    os.utime(folder, (old, old))


def test_workdir_is_removed_at_exit_and_swept_after_a_kill(tmp_path, monkeypatch):
    child, first = _child(tmp_path, "exit")
    assert child.wait(60) == 0
    assert not os.path.exists(first), f"a normal exit should remove {first}, it is still there"
    assert list(tmp_path.iterdir()) == [], f"left behind: {list(tmp_path.iterdir())}"

    killed, held_dead = _child(tmp_path, "wait")
    alive, held_live = _child(tmp_path, "wait")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        for folder in tmp_path.iterdir():
            _age(folder)
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        monkeypatch.setattr(tempfile, "tempdir", None)
        mine = data.workdir("lesson07")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert not os.path.exists(held_dead), (
            f"the killed kernel's folder {held_dead} should be swept, left: {left}"
        )
        assert os.path.isdir(held_live) and os.path.exists(os.path.join(held_live, "model.onnx")), (
            f"a live kernel's folder {held_live} must be kept, left: {left}"
        )
        assert mine.is_dir() and mine.parent == tmp_path, f"expected a new folder, got {mine}"
    finally:
        for c in (killed, alive):
            c.kill()
            c.wait(30)
    with pytest.raises(ValueError, match="letters, digits"):
        data.workdir("../escape")
