"""A Keras model as a LiteRT flatbuffer (``.tflite``), in four precisions, checked against Keras.

=================  ==============================================================================
precision          what the converter does
=================  ==============================================================================
``fp32``           float weights and arithmetic, as trained
``fp16``           weights stored as float16 (half the file), dequantised to float32 at load
``dynamic_int8``   weights stored as int8; activations quantised on the fly per inference
``full_int8``      weights *and* activations int8, scales calibrated on a representative dataset
                   drawn from the training data; float input and output, integer kernels inside
=================  ==============================================================================

Conversion uses Keras 3's own exporter (``model.export(path, format="litert", ...)``: a SavedModel,
then ``tf.lite.TFLiteConverter``), and the file is run with ``ai_edge_litert``'s interpreter. Every
file is written atomically next to a small JSON that describes it; an existing file is never
overwritten unless asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_choice, check_int
from cdp_tutorial.files import write_atomically, write_json_atomically

PRECISIONS = ("fp32", "fp16", "dynamic_int8", "full_int8")


class ConversionError(ValueError):
    """The LiteRT converter could not convert a model (an op it has no kernel for, a dynamic shape...)."""


def split_arrays(dataset, split: str = "test", limit: int | None = None):
    """The normalised float32 images and int labels of one split, as the models see them.

    Parameters
    ----------
    dataset : cdp_tutorial.data.Dataset
        From :func:`cdp_tutorial.data.load_dataset`.
    split : {"train", "test"}
    limit : int, optional
        Only the first ``limit`` images: only those are converted (200 calibration images of CIFAR's
        training split are 2.5 MB of float32, the whole split 600 MB).

    Returns
    -------
    images : numpy.ndarray, float32, ``(N, 32, 32, 3)``
    labels : numpy.ndarray, int64, ``(N,)``
    """
    from cdp_tutorial.data import make_pipeline

    check_choice(split, "split", ("train", "test"))
    limit = check_int(limit, "limit", minimum=1, allow_none=True)
    pipeline = make_pipeline(dataset, split, batch_size=256, cache=False).unbatch()
    if limit is not None:
        pipeline = pipeline.take(limit)  # cut before converting, not after
    images, labels = [], []
    for x, y in pipeline.batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def export_litert(model, path, precision: str = "fp32", *, representative_images=None,
                  calibration_size: int = 100, overwrite: bool = False, description=None,
                  check_images=None, check_labels=None) -> Path:
    """Convert a Keras model to a LiteRT ``.tflite`` file, with a JSON description beside it.

    Parameters
    ----------
    model : keras.Model
        A single-input image classifier (baseline or pruned), built with a static image shape.
    path : str or pathlib.Path
        The file to write; must end with ``.tflite``. ``<path>.json`` describes it.
    precision : {"fp32", "fp16", "dynamic_int8", "full_int8"}
    representative_images : numpy.ndarray, optional
        Required for ``"full_int8"``: float32 images shaped like the model's input, ``(N, H, W, C)``,
        drawn from the *training* data; the first ``calibration_size`` calibrate activation ranges.
    calibration_size : int, default 100
    overwrite : bool, default False
        Replace an existing file instead of raising ``FileExistsError``.
    description : dict, optional
        Extra fields for the JSON (what the model is, how it was trained).
    check_images, check_labels : numpy.ndarray, optional
        Test images and labels: the exported file is run on them and :func:`compare_with_keras`'s
        figures (both accuracies, agreement, max \|Δ output\|) are stored in the JSON as ``check``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unknown precision, a path not ending in ``.tflite``, missing or wrongly shaped
        representative images.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ConversionError
        The converter refused the model; nothing is left on disk.

    Examples
    --------
    >>> export_litert(model, "out/vgg16_fp16.tflite", precision="fp16")   # doctest: +SKIP
    """
    import tensorflow as tf

    precision = check_choice(precision, "precision", PRECISIONS)
    path = Path(path)
    if path.suffix != ".tflite":
        raise ValueError(f"a LiteRT file must end with .tflite, got {path.name!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    input_shape = tuple(model.input_shape[1:])
    options = {}
    if precision == "fp16":
        options = dict(optimizations=[tf.lite.Optimize.DEFAULT],
                       target_spec={"supported_types": [tf.float16]})
    elif precision == "dynamic_int8":
        options = dict(optimizations=[tf.lite.Optimize.DEFAULT])
    elif precision == "full_int8":
        calibration = _calibration_images(representative_images, input_shape,
                                          check_int(calibration_size, "calibration_size", minimum=1))
        options = dict(optimizations=[tf.lite.Optimize.DEFAULT],
                       representative_dataset=lambda: ([image[None]] for image in calibration),
                       target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]})
    elif representative_images is not None:
        raise ValueError(f"representative_images are only used by precision='full_int8', not {precision!r}")

    def write(tmp):
        try:
            model.export(str(tmp), format="litert", verbose=False, **options)
        except Exception as error:  # the converter raises many types; one clear error for the user
            raise ConversionError(f"LiteRT could not convert model {model.name!r} at {precision}: "
                                  f"{type(error).__name__}: {str(error).strip()[:600]}") from error
        _check_runs(tmp, input_shape, model.name, shown_as=path)

    write_atomically(path, write)
    info = {"file": path.name, "precision": precision, "bytes": path.stat().st_size,
            "model": model.name, "params": int(model.count_params()), "input_shape": list(input_shape),
            "calibration_images": len(calibration) if precision == "full_int8" else 0,
            "converter": "keras model.export(format='litert') -> tf.lite.TFLiteConverter",
            "tensorflow": tf.__version__, **(description or {})}
    if check_images is not None:
        info["check"] = compare_with_keras(model, path, check_images, check_labels)
    write_json_atomically(describe_path(path), info)
    return path


def load_keras_model(path):
    """A saved Keras model (``.keras``, or a legacy ``.h5``) to export or measure, without its optimizer.

    ``compile=False``: exporting and timing need the layers and weights only, so a training
    checkpoint loads too (its optimizer's learning-rate schedule is ``cdp_tutorial``'s own).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Another suffix, a ``.keras`` file that is not a zip archive (cut short, or a renamed ``.h5``),
        or one Keras cannot read; the message names the file.
    """
    import zipfile

    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Keras model at {path}")
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"{path}: expected a Keras model file ending in .keras (or a legacy .h5)")
    with open(path, "rb") as handle:
        is_hdf5 = handle.read(8) == b"\x89HDF\r\n\x1a\n"
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        reason = ("it is an HDF5 (.h5) file renamed to .keras; give it its .h5 name back" if is_hdf5 else
                  "it is cut short or damaged (a .keras file is a zip archive); save the model again")
        raise ValueError(f"{path} is not a readable .keras file: {reason}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras and h5py raise many types; one message that names the file
        raise ValueError(f"{path} could not be read as a Keras model ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:300]})") from error


def describe_path(path) -> Path:
    """The JSON that describes an exported file: ``vgg.tflite`` -> ``vgg.tflite.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def load_interpreter(path, threads: int = 2):
    """A ready-to-run ``ai_edge_litert`` interpreter for a ``.tflite`` file.

    ``threads`` is the interpreter's CPU thread count: 2 matches the paper's 2-CPU VM.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for one that is not LiteRT.
    """
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    threads = check_int(threads, "threads", minimum=1)
    if not path.is_file():
        raise FileNotFoundError(f"no LiteRT file at {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not a LiteRT model this interpreter can run: {error}") from error
    return interpreter


def litert_predict(interpreter, images) -> np.ndarray:
    """Logits of ``images`` (float32, ``(N, H, W, C)``), one image per ``invoke``, as deployed.

    Integer inputs or outputs (a fully quantised file with int8 I/O) are (de)quantised with the
    file's own scale and zero point, so the result is always comparable with Keras's logits.
    """
    images = np.asarray(images, dtype=np.float32)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if images.ndim != len(inp["shape"]) or tuple(images.shape[1:]) != tuple(inp["shape"][1:]):
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, inp['shape'][1:]))}), "
                         f"got {images.shape}")
    logits = []
    for image in images:
        interpreter.set_tensor(inp["index"], _quantise(image[None], inp))
        interpreter.invoke()
        logits.append(_dequantise(interpreter.get_tensor(out["index"]), out)[0])
    return np.stack(logits)


def compare_with_keras(model, path, images, labels, *, threads: int = 2) -> dict:
    """How far an exported file's predictions are from the Keras model's, on the same images.

    Returns
    -------
    dict
        ``keras_accuracy``, ``litert_accuracy`` (fractions), ``agreement`` (fraction of images
        with the same top-1 class) and ``max_abs_output_diff`` (max over images and classes of
        \\|Keras output - LiteRT output\\|: probabilities for a softmax output, logits otherwise).
    """
    labels = np.asarray(labels)
    keras_logits = np.asarray(model.predict(images, batch_size=128, verbose=0))
    litert_logits = litert_predict(load_interpreter(path, threads), images)
    keras_top, litert_top = keras_logits.argmax(1), litert_logits.argmax(1)
    return {"keras_accuracy": float((keras_top == labels).mean()),
            "litert_accuracy": float((litert_top == labels).mean()),
            "agreement": float((keras_top == litert_top).mean()),
            "max_abs_output_diff": float(np.abs(keras_logits - litert_logits).max()),
            "images": int(len(labels))}


def read_description(path) -> dict:
    """The JSON written beside an exported file by :func:`export_litert` (empty if there is none)."""
    described = describe_path(path)
    return json.loads(described.read_text(encoding="utf-8")) if described.exists() else {}


def _check_runs(path, input_shape, name, shown_as):
    """Run one zero image through a freshly written file: a file LiteRT cannot run is no export."""
    try:
        interpreter = load_interpreter(path, threads=1)
        litert_predict(interpreter, np.zeros((1, *input_shape), np.float32))
    except Exception as error:  # e.g. Select TF ops ("Flex") that ai_edge_litert has no kernels for
        reason = str(error).replace(str(path), str(shown_as)).strip()[:600]
        raise ConversionError(f"model {name!r} converted, but LiteRT cannot run the result (an op "
                              f"without a LiteRT kernel?): {reason}") from error


def _calibration_images(images, input_shape, size):
    if images is None:
        raise ValueError("precision='full_int8' needs representative_images: float32 training images "
                         f"shaped (N, {', '.join(map(str, input_shape))})")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != input_shape or len(images) == 0:
        raise ValueError(f"representative_images must be shaped (N, {', '.join(map(str, input_shape))}) "
                         f"like the model's input, got {images.shape}")
    return images[:size]


def _quantise(x, detail):
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantise(y, detail):
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
