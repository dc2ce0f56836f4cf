"""cdp_tutorial: complexity-driven CNN compression, taught in notebooks and implemented in Keras 3.

The package mirrors the paper, one idea per module:

=========================  ===============================================================
``complexity``             the three complexities of every layer (Eqs. 3, 5, 7): :func:`profile`
``layer_costs``            each layer type's counting rule (convs, groups, dense, attention)
``sampling``               weighted random layer selection (Eqs. 4, 6, 8)
``pruning``                Algorithm 1 on shapes: :func:`plan_pruning`, :func:`plan_uniform`
``rebuild``                a plan becomes a real, smaller Keras model: :func:`apply_plan`
``graph``                  which channels are coupled (residual ``Add``, depthwise, groups, concat)
``channel_walk``           the walk through a model's graph that the coupling is read from
``channel_rules``          what each layer or raw op does to channels (the graph's rules)
``layouts``                a tensor's channels in terms of channel groups (for counting, slicing)
``reachability``           why a budget is out of reach: what holds channels whole, what would help
``keras_internals``        the one place that touches Keras' private graph API
``plans``                  the :class:`PruningPlan` Algorithm 1 returns; JSON save and load
``models``                 CIFAR VGG-16, AlexNet, ResNet-50, MobileNetV2: per-layer widths, droppable blocks
``edgecompress``           beyond the paper: compound shrinking, margin cascades, foreground cropping
``data``                   CIFAR / Fashion-MNIST / fixture loading; ``tf.data`` streams
``training``               recipes, the train loop, resumable run folders
``importance``             filter scores of a trained model: random, L1, L2, BN gamma, PLS-VIP
``baselines``              ranking plans: which filters of a trained model go
``prune_finetune``         train -> prune -> fine-tune as the baselines' authors do it, Fig. 2a
``runs``                   one run: its spec and key, its model, its record
``experiments``, ``cli``   sweeps of modes x budgets x methods x seeds (serial or Ray); ``cdp-tutorial``
``results``                run records and the tables, beside published numbers
``evidence``               the committed evidence sweep: methods compared seed by seed
``latency``                measured per-layer latency tables; Algorithm 1 to a latency budget (mode LA)
``profiles``               quick / evidence / standard / paper run profiles
``notebook``               notebook plumbing: links, the Setup cell
``files``, ``store``       atomic writes (nothing is ever half-written); the one append-only record store
``devices``                Table 6 on any device: ``bench-device``, tegrastats power, device records
``edge``                   LiteRT export (fp32/fp16/int8), measured latency, CPU, RAM, energy
=========================  ===============================================================

Importing the package loads TensorFlow (through Keras) but downloads and trains nothing.
"""

import os

# Quiet TensorFlow's C++ start-up chatter in notebooks; a value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# submodules as attributes: cdp.models.vgg16(), cdp.sampling.selection_probabilities(...) read well in notebooks
from cdp_tutorial import models, notebook, profiles, sampling  # noqa: E402,F401
from cdp_tutorial.complexity import ComplexityReport, Totals, profile  # noqa: E402,F401
from cdp_tutorial.profiles import get_profile  # noqa: E402,F401
from cdp_tutorial.pruning import PruningPlan, layer_weights, plan_pruning, plan_uniform  # noqa: E402,F401
from cdp_tutorial.rebuild import apply_plan  # noqa: E402,F401

__all__ = ["profile", "plan_pruning", "plan_uniform", "apply_plan", "PruningPlan", "layer_weights",
           "ComplexityReport", "Totals", "get_profile", "models"]
