r"""Dynamic image cropping at teaching scale: CAM boxes, a tiny foreground predictor, crop, classify.

EdgeCompress crops the informative foreground before inference so no computation is spent on the
background, with a lightweight *foreground predictor* (in its code: a small AnyNet on the image
predicting a normalised box) whose box labels come from class activation maps of the classifier
(its ``CamCrop``: Grad-CAM, threshold at min + 0.5 (max - min)). The same pipeline here:

1. :func:`grad_cam` -- Grad-CAM of a trained classifier (Selvaraju et al. 2017): with :math:`A^k`
   the ``k``-th feature map of a conv layer and :math:`y^c` the score of the predicted class
   *before the softmax* (the softmax layer's input: a saturated probability has almost no gradient,
   and its map would not show what the class score rests on),

   .. math:: \alpha_k = \frac{1}{HW}\sum_{i,j} \frac{\partial y^c}{\partial A^k_{ij}}, \qquad
             L = \mathrm{ReLU}\Big(\sum_k \alpha_k A^k\Big).

2. :func:`cam_boxes` -- upsample, keep pixels above :math:`\min L + t(\max L - \min L)`, take their
   bounding box, make it square (the crop is resized to a square classifier input).
3. :func:`foreground_predictor` / :func:`train_predictor` -- a tiny CNN on a downscaled image
   learns those boxes (sigmoid outputs :math:`(y_0, x_0, y_1, x_1) \in [0, 1]^4`).
4. :func:`crop_images` -- crop every image to its predicted box and resize it to the (lower)
   classifier resolution. Total cost per image = predictor MACs + classifier MACs at that resolution.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cdp_tutorial.checks import check_int, check_number, check_seed
from cdp_tutorial.edgecompress.images import model_outputs, pre_softmax_scores, resize_images, softmax_head

__all__ = ["box_iou", "cam_boxes", "crop_images", "foreground_predictor", "grad_cam", "predict_boxes",
           "train_predictor"]


def grad_cam(model: keras.Model, images, layer_name: str, *, batch_size: int = 128) -> np.ndarray:
    """Grad-CAM maps of ``model``'s predicted class at conv layer ``layer_name``, each scaled to [0, 1].

    Parameters
    ----------
    model : keras.Model
        A trained functional classifier ending in a softmax; the gradient is that of the predicted
        class's pre-softmax score (the logit the softmax reads), as in Selvaraju et al.
    images : numpy.ndarray
        *Normalised* float32 images as the model was trained on (see ``images.normalise``).
    layer_name : str
        A layer with a 4-D output, e.g. ``"relu7"`` of VGG-16 (8x8 at 32x32 input).
    batch_size : int, default 128

    Returns
    -------
    numpy.ndarray, shape (N, h, w)
        At the layer's spatial size; an all-zero map stays zero.

    Raises
    ------
    ValueError
        Unknown ``layer_name``, a layer whose output is not (batch, h, w, channels), or a model
        that does not end in a softmax.
    """
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"{model.name} has no layer {layer_name!r}") from None
    if len(layer.output.shape) != 4:
        raise ValueError(f"layer {layer_name!r} has output shape {layer.output.shape}; Grad-CAM needs a conv "
                         "feature map (batch, height, width, channels)")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    head, head_input = softmax_head(model)
    probe = keras.Model(model.inputs, [layer.output, head_input])
    maps = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size], tf.float32)
        with tf.GradientTape() as tape:
            features, before_head = probe(x, training=False)
            scores = pre_softmax_scores(head, before_head)  # y^c before the softmax
            chosen = tf.gather(scores, tf.argmax(scores, axis=1), axis=1, batch_dims=1)
        grads = tape.gradient(chosen, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy())
    cams = np.concatenate(maps)
    low = cams.min(axis=(1, 2), keepdims=True)
    span = cams.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (cams - low) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def cam_boxes(cams, image_size: int, *, threshold: float = 0.5, min_size: float = 0.5,
              square: bool = True) -> np.ndarray:
    """Bounding boxes of the salient region of each map, normalised ``(y0, x0, y1, x1)`` in [0, 1].

    Parameters
    ----------
    cams : array, shape (N, h, w)
        Maps from :func:`grad_cam`.
    image_size : int
        Side of the (square) images the boxes are for; maps are upsampled to it first.
    threshold : float, default 0.5
        Pixels above ``min + threshold * (max - min)`` are salient, in [0, 1): at 1 no pixel
        would be (the value 0.5 is the ``CamCrop`` class of EdgeCompress's public code,
        github.com/ntuliuteam/edge-compress, ``core/crop.py``).
    min_size : float, default 0.5
        Smallest box side as a fraction of the image (a tiny box loses the object's context).
    square : bool, default True
        Grow the shorter side around the centre (shifted to stay inside the image).

    Returns
    -------
    numpy.ndarray, shape (N, 4), float32
        A map with nothing salient gives the whole image.

    Raises
    ------
    ValueError
        ``threshold`` outside [0, 1), ``min_size`` outside [0, 1], maps not shaped (N, h, w).

    Examples
    --------
    >>> cam = np.zeros((1, 8, 8)); cam[0, 2:4, 2:6] = 1.0
    >>> cam_boxes(cam, 32, min_size=0.25).round(3).tolist()
    [[0.125, 0.25, 0.625, 0.75]]
    """
    cams = np.asarray(cams, dtype=np.float32)
    if cams.ndim != 3:
        raise ValueError(f"cams must have shape (N, height, width), got {cams.shape}")
    image_size = check_int(image_size, "image_size", minimum=1)
    threshold = check_number(threshold, "threshold (share of each map's range)", minimum=0, maximum=1,
                             include_maximum=False)
    min_size = check_number(min_size, "min_size", minimum=0, maximum=1)
    up = tf.image.resize(cams[..., None], (image_size, image_size), method="bilinear").numpy()[..., 0]
    boxes = np.tile(np.array([0, 0, 1, 1], np.float32), (len(up), 1))
    for n, cam in enumerate(up):
        low, high = cam.min(), cam.max()
        if high <= low:
            continue
        rows = np.flatnonzero((cam > low + threshold * (high - low)).any(axis=1))
        cols = np.flatnonzero((cam > low + threshold * (high - low)).any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        boxes[n] = np.array([y0, x0, y1, x1], np.float32) / image_size
    return _regulate(boxes, min_size, square)


def _regulate(boxes: np.ndarray, min_size: float, square: bool) -> np.ndarray:
    """Order corners, enforce the minimum side, make square, keep inside [0, 1]."""
    y0, y1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 0], boxes[:, 2])
    x0, x1 = np.minimum(boxes[:, 1], boxes[:, 3]), np.maximum(boxes[:, 1], boxes[:, 3])
    h, w = np.maximum(y1 - y0, min_size), np.maximum(x1 - x0, min_size)
    if square:
        h = w = np.maximum(h, w)
    h, w = np.minimum(h, 1.0), np.minimum(w, 1.0)
    cy, cx = np.clip((y0 + y1) / 2, h / 2, 1 - h / 2), np.clip((x0 + x1) / 2, w / 2, 1 - w / 2)
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1).astype(np.float32)


def foreground_predictor(input_size: int = 16, filters: int = 8, name: str = "foreground_predictor") -> keras.Model:
    """A tiny CNN that predicts a normalised crop box ``(y0, x0, y1, x1)`` from a downscaled image.

    Two strided 3x3 convs (``filters``, ``2 * filters``), global average pooling, a 32-unit hidden
    layer and 4 sigmoid outputs. Its input is the image downscaled to ``input_size`` and divided by
    255 (it must cost little next to the classifier it serves).

    Examples
    --------
    >>> from cdp_tutorial import profile
    >>> predictor = foreground_predictor(16, 8)
    >>> predictor.output.shape, profile(predictor).totals.macs
    ((None, 4), 32896)
    """
    input_size = check_int(input_size, "input_size", minimum=4)
    filters = check_int(filters, "filters", minimum=1)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid", name="box")(x), name=name)


def _predictor_inputs(predictor: keras.Model, images) -> np.ndarray:
    size = predictor.inputs[0].shape[1]
    return resize_images(np.asarray(images), size).astype(np.float32) / 255.0


def train_predictor(predictor: keras.Model, images, boxes, *, epochs: int = 10, batch_size: int = 64,
                    learning_rate: float = 3e-3, seed: int = 0):
    """Fit the predictor to ``boxes`` (uint8 ``images`` at any size; mean-squared error, Adam).

    Returns the Keras ``History``. The caller seeds the initial weights before building.
    """
    epochs = check_int(epochs, "epochs", minimum=1)
    seed = check_seed(seed)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.shape != (len(images), 4):
        raise ValueError(f"boxes must have shape ({len(images)}, 4), got {boxes.shape}")
    keras.utils.set_random_seed(seed)
    predictor.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return predictor.fit(_predictor_inputs(predictor, images), boxes, epochs=epochs, batch_size=batch_size,
                         verbose=0, shuffle=True)


def predict_boxes(predictor: keras.Model, images, *, min_size: float = 0.5, square: bool = True) -> np.ndarray:
    """The predictor's boxes for uint8 ``images``, regulated as :func:`cam_boxes` regulates its own."""
    raw = model_outputs(predictor, _predictor_inputs(predictor, images))
    return _regulate(raw, check_number(min_size, "min_size", minimum=0, maximum=1), square)


def crop_images(images, boxes, size: int) -> np.ndarray:
    """Crop each uint8 image to its normalised box and resize the crop to ``size`` x ``size`` (uint8).

    Examples
    --------
    >>> crop_images(np.zeros((2, 32, 32, 3), np.uint8), [[0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75]], 16).shape
    (2, 16, 16, 3)
    """
    size = check_int(size, "size", minimum=1)
    images = np.asarray(images)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.shape != (len(images), 4):
        raise ValueError(f"boxes must have shape ({len(images)}, 4), got {boxes.shape}")
    # crop_and_resize samples from the first to the last given coordinate in pixel-index units
    # (0 .. H-1); a box edge 0..1 is the image's outer edge. Map the box to the centres of the
    # size x size output pixels it is split into, so an area is not shifted by half a pixel.
    h, w = images.shape[1:3]
    half = 0.5 * (boxes[:, 2:] - boxes[:, :2]) / size  # half an output pixel, normalised
    first = (boxes[:, :2] + half) * (h, w) - 0.5
    last = (boxes[:, 2:] - half) * (h, w) - 0.5
    scaled = np.concatenate([first, last], axis=1) / np.array([h - 1, w - 1, h - 1, w - 1], np.float32)
    crops = tf.image.crop_and_resize(images.astype(np.float32), np.clip(scaled, 0, 1).astype(np.float32),
                                     np.arange(len(images)), (size, size), method="bilinear")
    return np.clip(np.rint(crops.numpy()), 0, 255).astype(np.uint8)


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of matching rows of two ``(N, 4)`` box arrays ``(y0, x0, y1, x1)``.

    Examples
    --------
    >>> box_iou([[0, 0, 1, 1]], [[0, 0, 0.5, 1]]).tolist()
    [0.5]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter_h = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    inter_w = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = inter_h * inter_w
    area = lambda box: (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)
