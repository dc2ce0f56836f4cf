r"""Filter importance: how much each filter of a *trained* model seems to matter, by five criteria.

Complexity-driven pruning never asks this question: it removes filters at random and trains the
smaller architecture from scratch. The baselines it is compared with (notebook 05) prune a trained
model and keep its "best" filters, so they need a score per filter:

============  =========================================================================
criterion     score of filter :math:`f` (one output channel of a conv)
============  =========================================================================
``random``    a seeded uniform draw (Mittal et al. 2018: random is a strong baseline)
``l1``        :math:`\lVert K_f \rVert_1`, the sum of its kernel's absolute weights (Li et al. 2016)
``l2``        :math:`\lVert K_f \rVert_2`
``bn_gamma``  :math:`|\gamma_f|` of the batch norm right after the conv (network slimming, Liu et al. 2017)
``pls``       the VIP score of its feature in a PLS regression on the labels (Jordao et al. 2020)
============  =========================================================================

**Channel groups.** Convs whose outputs meet at an ``Add`` must keep the same channels, so a tied
group is scored as one unit: the scores of its convs are summed, and the result is given under
the group's first conv. :func:`filter_scores` scores every group that may be pruned
(:meth:`cdp_tutorial.graph.ChannelGraph.prunable_groups`), and its output is what
``cdp_tutorial.apply_plan(..., keep_weights=True, importance=scores)`` takes.

**PLS-VIP** (Jordao, Yamada, Schwartz, *Neurocomputing* 2020). Every filter's feature map is
reduced by global max pooling to one number per image; the numbers of all filters of all scored
convs form one row per image, :math:`X \in \mathbb{R}^{n \times p}`. A PLS regression with
:math:`A` components (2 in the paper) is fitted from :math:`X` to the one-hot labels
:math:`Y \in \{0, 1\}^{n \times c}` (scikit-learn's ``PLSRegression``, which standardises
:math:`X` and :math:`Y`). With :math:`w_a` the X-weights, :math:`t_a` the X-scores and
:math:`q_a` the Y-loadings of component :math:`a`, the variable importance in projection of
column :math:`j` is (Wold et al. 1993; Mehmood et al. 2012)

.. math::

    \mathrm{VIP}_j = \sqrt{\, p \; \frac{\sum_{a=1}^{A} \mathrm{SS}_a \,
    \bigl(w_{ja} / \lVert w_a \rVert\bigr)^2}{\sum_{a=1}^{A} \mathrm{SS}_a} \,},
    \qquad \mathrm{SS}_a = \lVert q_a \rVert^2 \, \lVert t_a \rVert^2 ,

the share of the explained variance of :math:`Y` that goes through column :math:`j`, scaled so
that the squares average to 1 (:math:`\sum_j \mathrm{VIP}_j^2 = p`). :func:`vip_scores` computes it
for any matrix; a filter's PLS importance is its column's VIP.
"""

from __future__ import annotations

import keras
import numpy as np

from cdp_tutorial.checks import check_choice, check_int, check_model, check_seed
from cdp_tutorial.graph import analyse

CRITERIA = ("random", "l1", "l2", "bn_gamma", "pls")

L = keras.layers


def vip_scores(features, labels, n_components: int = 2) -> np.ndarray:
    r"""Variable importance in projection of every column of ``features`` for predicting ``labels``.

    Fits ``sklearn.cross_decomposition.PLSRegression(n_components)`` from ``features`` to the
    one-hot ``labels`` and returns

    .. math::

        \mathrm{VIP}_j = \sqrt{p \sum_a \mathrm{SS}_a (w_{ja}/\lVert w_a\rVert)^2 / \sum_a \mathrm{SS}_a},
        \quad \mathrm{SS}_a = \lVert q_a\rVert^2 \lVert t_a\rVert^2 .

    Parameters
    ----------
    features : array-like, shape (n_samples, n_columns)
        One row per sample (for filters: the global max of every filter's feature map).
    labels : array-like of int, shape (n_samples,)
        Integer class labels, at least two distinct ones.
    n_components : int, default 2
        PLS components, as in Jordao et al. (2020).

    Returns
    -------
    numpy.ndarray, shape (n_columns,)
        One non-negative VIP per column; their squares sum to ``n_columns``.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D, holds NaN or infinities, does not have one row per label; if
        the labels are not integers or hold fewer than two classes; if there are fewer samples than
        classes and than ``n_components``, or ``n_components`` exceeds the number of columns.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 200)
    >>> features = np.c_[labels + 0.1 * rng.normal(size=200), rng.normal(size=(200, 3))]
    >>> vip = vip_scores(features, labels)
    >>> int(np.argmax(vip)), round(float(np.sum(vip ** 2)), 6)
    (0, 4.0)
    """
    from sklearn.cross_decomposition import PLSRegression

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (samples x columns), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features hold NaN or infinite values")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"labels must be 1-D with one label per row of features ({len(x)}), "
                         f"got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer classes, got dtype {y.dtype}")
    n_components = check_int(n_components, "n_components", minimum=1)
    classes, y_index = np.unique(y, return_inverse=True)
    n, p = x.shape
    if len(classes) < 2:
        raise ValueError("labels hold a single class; PLS needs at least two to find what separates them")
    if n <= max(len(classes), n_components):
        raise ValueError(f"PLS needs more samples than classes and than components: got {n} samples "
                         f"for {len(classes)} classes and {n_components} components")
    if n_components > p:
        raise ValueError(f"n_components ({n_components}) cannot exceed the number of columns ({p})")
    one_hot = np.eye(len(classes))[y_index]
    pls = PLSRegression(n_components=n_components, scale=True).fit(x, one_hot)
    weights = pls.x_weights_  # (p, A), unit columns already; normalised again for safety
    scores = pls.transform(x)  # (n, A) the X-scores t_a
    loadings = pls.y_loadings_  # (c, A) q_a
    explained = np.sum(loadings ** 2, axis=0) * np.sum(scores ** 2, axis=0)  # SS_a
    share = (weights / np.linalg.norm(weights, axis=0)) ** 2
    return np.sqrt(p * (share @ explained) / np.sum(explained))


def filter_scores(model, criterion: str, *, data=None, samples: int = 500, seed: int = 0,
                  n_components: int = 2, batch_size: int = 128, coupled: str = "tie") -> dict:
    """Score every filter of every prunable channel group of a trained model.

    Parameters
    ----------
    model : keras.Model
        A trained (built) Keras model with at least one prunable conv.
    criterion : {"random", "l1", "l2", "bn_gamma", "pls"}
        See the module docstring.
    data : cdp_tutorial.data.Dataset, optional
        Needed by ``"pls"`` only: its first ``samples`` training images are fed through the model.
    samples : int, default 500
        Training images PLS uses (at least the number of classes, and more than ``n_components``).
    seed : int, default 0
        Seed of the ``"random"`` criterion.
    n_components : int, default 2
        PLS components.
    batch_size : int, default 128
        Batch size of the feature pass (``"pls"``).
    coupled : {"tie", "skip"}, default "tie"
        Whether groups tied by an ``Add`` are scored (as one unit) or left out.

    Returns
    -------
    dict
        ``{conv layer name: numpy array, one score per filter}``, one entry per prunable group (a
        tied group under its first conv), in model order; higher means more important. The input
        that ``apply_plan(..., importance=...)`` and :func:`cdp_tutorial.baselines.plan_by_ranking` take.

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    ValueError
        Unknown criterion; a model with no prunable conv; ``"bn_gamma"`` on a conv with no batch
        norm right after it; ``"pls"`` without ``data``, or with fewer samples than classes or
        components, or on a conv nested inside an inner model.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> model = cdp.models.vgg16(width_multiplier=0.125)
    >>> scores = filter_scores(model, "l1")
    >>> len(scores["conv1"]) == model.get_layer("conv1").filters
    True
    """
    check_model(model)
    check_choice(criterion, "criterion", CRITERIA)
    seed = check_seed(seed, "seed")
    graph = analyse(model)
    groups = graph.prunable_groups(coupled)
    if not groups:
        raise ValueError("the model has no prunable conv layer, so there are no filters to score "
                         "(dense layers, the output and frozen channels are never pruned)")
    if criterion == "random":
        rng = np.random.default_rng(seed)
        return {g.producers[0]: rng.random(g.width) for g in groups}
    if criterion == "pls":
        per_layer = _pls_per_layer(model, graph, groups, data, samples, n_components, batch_size)
    else:
        per_layer = {name: _weight_score(graph, name, criterion) for g in groups for name in g.producers}
    return {g.producers[0]: np.sum([per_layer[name] for name in g.producers], axis=0) for g in groups}


def _weight_score(graph, name: str, criterion: str) -> np.ndarray:
    """l1 / l2 norm of each output filter's kernel, or the |gamma| of the batch norm after it."""
    layer = graph.layer(name)
    if criterion == "bn_gamma":
        readers = [info.layer for info in graph.layers.values() if name in info.parents]
        norms = [r for r in readers if isinstance(r, L.BatchNormalization)]
        if len(readers) != 1 or not norms or norms[0].gamma is None:
            raise ValueError(f"criterion 'bn_gamma' needs a batch norm (with scale) right after conv "
                             f"{name!r}, which is read by {[type(r).__name__ for r in readers]}; "
                             "use 'l1' or 'l2' for convs without one")
        return np.abs(np.asarray(norms[0].gamma))
    kernel = np.asarray(getattr(layer, "pointwise_kernel", None) if hasattr(layer, "pointwise_kernel")
                        else layer.kernel)
    out_axis = -2 if isinstance(layer, (L.Conv2DTranspose, L.Conv1DTranspose, L.Conv3DTranspose)) else -1
    per_filter = np.moveaxis(kernel, out_axis, 0).reshape(kernel.shape[out_axis], -1)
    if criterion == "l1":
        return np.abs(per_filter).sum(axis=1)
    return np.sqrt((per_filter ** 2).sum(axis=1))


def pls_features(model, names, data, samples: int = 500, batch_size: int = 128) -> np.ndarray:
    """Global max of every filter's output, one row per training image: the PLS input matrix.

    Columns follow ``names`` (conv layers of the model's top level) and, within a layer, its filters.
    """
    from cdp_tutorial.data import make_pipeline

    if data is None:
        raise ValueError("criterion 'pls' feeds images through the model: pass data=load_dataset(...)")
    samples = check_int(samples, "samples", minimum=2)
    try:
        outputs = [model.get_layer(name).output for name in names]
    except ValueError as error:
        raise ValueError(f"criterion 'pls' reads conv outputs of the model's top level; {error}") from None
    probe = keras.Model(model.inputs, outputs)
    rows = []
    taken = 0
    for images, _ in make_pipeline(data, "train", batch_size=batch_size, cache=False):
        maps = probe(images, training=False)
        maps = maps if isinstance(maps, (list, tuple)) else [maps]
        spatial = [tuple(range(1, len(m.shape) - 1)) for m in maps]
        rows.append(np.concatenate([np.max(np.asarray(m), axis=ax) for m, ax in zip(maps, spatial)], axis=1))
        taken += len(rows[-1])
        if taken >= samples:
            break
    return np.concatenate(rows)[:samples]


def _pls_per_layer(model, graph, groups, data, samples, n_components, batch_size) -> dict:
    if data is None:
        raise ValueError("criterion 'pls' feeds images through the model: pass data=load_dataset(...)")
    samples = min(check_int(samples, "samples", minimum=1), len(data.y_train))
    if samples <= max(data.num_classes, n_components):
        raise ValueError(f"PLS needs more samples than classes and than components: {samples} training "
                         f"images for {data.num_classes} classes and {n_components} components")
    names = [name for g in groups for name in g.producers]
    features = pls_features(model, names, data, samples, batch_size)
    labels = np.asarray(data.y_train[: len(features)])
    vip = vip_scores(features, labels, n_components)
    widths = [graph.layer(name).filters for name in names]
    return dict(zip(names, np.split(vip, np.cumsum(widths)[:-1])))
