"""Beyond the paper with EdgeCompress (Kong et al., IEEE TCAD 2023): three ideas, one module each.

The three ideas (compound shrinking of depth, width and resolution; dynamic image cropping by a
lightweight foreground predictor; a cascade of models chosen per image) are those of the paper's
abstract; anything more specific cited here comes from its public code,
github.com/ntuliuteam/edge-compress, and says so.

=================  ==================================================================================
``compound``       depth x width x resolution shrunk together to a MAC budget: probe each
                   dimension's cost with short proxy trainings, then search (:func:`search_compound`)
``cascade``        cascaded dynamic inference by the top-1 minus top-2 softmax margin: accuracy vs
                   average MACs over thresholds, threshold choice on a validation split, batch-1
                   latency (median and spread, by ``cdp_tutorial.edge.time_calls``)
``cropping``       Grad-CAM boxes, a tiny foreground predictor, crop + lower-resolution classification
``images``         a held-out validation split, lower input resolutions, normalisation as in training,
                   class probabilities (softmax or converted logits) and pre-softmax scores
=================  ==================================================================================

The methods here are this tutorial's, written from the abstract's description (the public code has
evaluation scripts; the training functions its ``main.py`` imports are not in the repository);
notebook 08 uses them at teaching scale.
"""

from cdp_tutorial.edgecompress.cascade import (Cascade, CascadeOutcome, cascade_curve, choose_threshold,
                                               expected_latency, simulate_cascade, softmax_margin)
from cdp_tutorial.edgecompress.compound import (CompoundConfig, CompoundSearch, compound_config,
                                                measure_contributions, search_compound, train_config)
from cdp_tutorial.edgecompress.cropping import (box_iou, cam_boxes, crop_images, foreground_predictor, grad_cam,
                                                predict_boxes, train_predictor)
from cdp_tutorial.edgecompress.images import (at_resolution, class_probabilities, holdout_validation,
                                              model_outputs, normalise, output_activation, pre_softmax_scores,
                                              predict_probabilities, resize_images, softmax, softmax_head,
                                              with_images)

__all__ = ["Cascade", "CascadeOutcome", "CompoundConfig", "CompoundSearch", "at_resolution", "box_iou",
           "cam_boxes", "cascade_curve", "choose_threshold", "class_probabilities", "compound_config",
           "crop_images", "expected_latency", "foreground_predictor", "grad_cam", "holdout_validation",
           "measure_contributions", "model_outputs", "normalise", "output_activation", "pre_softmax_scores",
           "predict_boxes", "predict_probabilities", "resize_images", "search_compound", "simulate_cascade",
           "softmax", "softmax_head", "softmax_margin", "train_config", "train_predictor", "with_images"]
