"""CIFAR-sized CNNs with per-layer widths: the four networks the paper prunes.

``keras.applications`` cannot take per-layer widths and uses ImageNet stems that shrink a 32x32 image
to 1x1, so the tutorial builds its own CIFAR variants. Every builder takes the same arguments:

- ``widths``: ``{conv layer name: filters}``; a pruning plan's ``.widths`` is exactly such a mapping,
  so ``builder(widths=plan.widths)`` builds the pruned network too (``cdp_tutorial.apply_plan`` does
  the same for any model, by cloning it).
- ``width_multiplier``: scales every conv width to ``max(1, round(w * m))``, the *uniform width
  scaling* baseline that complexity-driven pruning is compared against.
- ``drop_blocks``: names of whole blocks to leave out (VGG/AlexNet conv layers, ResNet bottlenecks,
  MobileNetV2 inverted-residual blocks), only blocks whose input and output shapes are equal;
  :data:`DEPTH_ORDERS` gives the order in which depth shrinking drops them.
- ``input_shape``: the image size; lower resolutions cost fewer MACs (the third dimension of
  EdgeCompress's compound shrinking, ``cdp_tutorial.edgecompress``).

Layer names are a stable public contract: the planner, the notebooks and saved plans refer to them.
A dropped block's layers are simply absent; the remaining layers keep their names.

One module per family: ``vgg``, ``alexnet``, ``resnet``, ``mobilenetv2``; ``common`` holds the checks
and layer stacks they share. Everything public is re-exported here.

==============  =========  ===================  ================  ==========================
builder         conv       params               MACs              follows
==============  =========  ===================  ================  ==========================
``vgg16``       13         15,261,898           313,725,952       Li et al. / rethinking
``alexnet``     5          7,709,898            225,650,688       ours (5 conv + 3 FC)
``resnet50``    53         23,573,962           1,297,829,888     kuangliu/pytorch-cifar
``mobilenetv2`` 35 (+17)   2,270,794            87,976,448        kuangliu + keras.applications
==============  =========  ===================  ================  ==========================

Figures are for ``num_classes=10`` and one 32x32x3 image. *params* is ``model.count_params()``, which
includes the BatchNorm moving mean and variance (not trainable). *MACs* are multiply-accumulates of
the Conv2D (Hout·Wout·K²·Cin·Cout), DepthwiseConv2D (Hout·Wout·K²·C) and Dense (in·out) layers;
FLOPs as other tools count them are 2 x MACs. MobileNetV2 has 35 Conv2D plus 17 DepthwiseConv2D.

All convolutions use ``padding="same"`` and no bias (a BatchNorm follows each one), BatchNorm uses
PyTorch's momentum and epsilon (the reference implementations are PyTorch), and every network ends
in a Dense layer named ``predictions`` with a softmax.
"""

from __future__ import annotations

from cdp_tutorial.models.alexnet import ALEXNET_DEPTH_ORDER, alexnet
from cdp_tutorial.models.common import BN
from cdp_tutorial.models.mobilenetv2 import MOBILENETV2_CFG, MOBILENETV2_DEPTH_ORDER, mobilenetv2
from cdp_tutorial.models.resnet import RESNET50_DEPTH_ORDER, RESNET50_STAGES, RESNET_EXPANSION, resnet50
from cdp_tutorial.models.vgg import VGG16_CFG, VGG16_DEPTH_ORDER, vgg16

__all__ = ["BN", "DEPTH_ORDERS", "MOBILENETV2_CFG", "MODELS", "RESNET50_STAGES", "RESNET_EXPANSION", "VGG16_CFG",
           "alexnet", "build_model", "droppable_blocks", "mobilenetv2", "resnet50", "vgg16"]

# --------------------------------------------------------------------------- registry

MODELS = {"vgg16": vgg16, "alexnet": alexnet, "resnet50": resnet50, "mobilenetv2": mobilenetv2}
DEPTH_ORDERS = {"vgg16": VGG16_DEPTH_ORDER, "alexnet": ALEXNET_DEPTH_ORDER, "resnet50": RESNET50_DEPTH_ORDER,
                "mobilenetv2": MOBILENETV2_DEPTH_ORDER}


def build_model(name, /, **kwargs):
    """Build one of the four networks by name.

    Parameters
    ----------
    name : str
        ``"vgg16"``, ``"alexnet"``, ``"resnet50"`` or ``"mobilenetv2"`` (case-insensitive), given
        positionally, so that a ``name=`` keyword can still reach the builder.
    **kwargs
        Passed to the builder: ``num_classes``, ``input_shape``, ``widths``, ``width_multiplier``,
        ``name`` (the Keras model's name), ``drop_blocks``.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> build_model("VGG16", num_classes=100).output.shape
    (None, 100)
    """
    return MODELS[_model_key(name)](**kwargs)


def droppable_blocks(name) -> tuple[str, ...]:
    """The blocks of a network that depth shrinking may drop, in the order it drops them.

    Parameters
    ----------
    name : str
        ``"vgg16"``, ``"alexnet"``, ``"resnet50"`` or ``"mobilenetv2"`` (case-insensitive).

    Returns
    -------
    tuple of str
        Block names for the builders' ``drop_blocks``; the first ``k`` give depth shrinking's
        ``k``-block-shallower network.

    Examples
    --------
    >>> droppable_blocks("vgg16")[:3]
    ('conv7', 'conv10', 'conv13')
    >>> len(droppable_blocks("resnet50")), len(droppable_blocks("mobilenetv2"))
    (12, 10)
    """
    return DEPTH_ORDERS[_model_key(name)]


def _model_key(name) -> str:
    key = name.lower() if isinstance(name, str) else name
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return key
