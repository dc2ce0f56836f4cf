"""Training: train a network once, from scratch, repeatably, and resume it after an interruption.

Start with :func:`train`::

    keras.utils.set_random_seed(0)            # the initial weights: the caller's job
    model = vgg16(widths=plan.widths)         # the derived architecture, from scratch
    result = train(model, data, "paper", epochs=150, run_dir="runs/vgg16-pa-0")

==============  ===================================================================================
module          what it owns
==============  ===================================================================================
``recipes``     :class:`Recipe`, the ``"paper"`` and ``"modern"`` :data:`RECIPES`, :func:`get_recipe`
``loop``        :func:`train`, :func:`epoch_seed`, per-epoch recording, op determinism
``rundir``      a run's folder: config identity, checkpoints, ``state.json``, resuming
``result``      :class:`TrainResult` and the library versions it records
==============  ===================================================================================

The data order of epoch *e* depends only on ``(seed, e)`` (:func:`epoch_seed`, fed to the stateless
:func:`cdp_tutorial.data.make_epochs`), never on TensorFlow's global seed; that is what lets a
resumed run end exactly where an uninterrupted one would have. Every public name is re-exported here.
"""

from cdp_tutorial.training.loop import epoch_seed, train
from cdp_tutorial.training.recipes import RECIPES, Recipe, WarmupCosine, get_recipe
from cdp_tutorial.training.result import TrainResult
from cdp_tutorial.training.rundir import CONFIG_FILE, RESULT_FILE, STATE_FILE

__all__ = ["CONFIG_FILE", "RECIPES", "RESULT_FILE", "STATE_FILE", "Recipe", "TrainResult", "WarmupCosine", "epoch_seed",
           "get_recipe", "train"]
