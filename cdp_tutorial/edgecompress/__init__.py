"""Beyond the paper with EdgeCompress (Kong et al., IEEE TCAD 2023): three ideas, one module each.

=================  ==================================================================================
``compound``       depth x width x resolution shrunk together to a MAC budget: probe each
                   dimension's cost with short proxy trainings, then search (:func:`search_compound`)
``cascade``        cascaded dynamic inference by the top-1 minus top-2 softmax margin: accuracy vs
                   average MACs over thresholds, threshold choice on a validation split, latency
``cropping``       Grad-CAM boxes, a tiny foreground predictor, crop + lower-resolution classification
``images``         a held-out validation split, lower input resolutions, normalisation as in training
=================  ==================================================================================

EdgeCompress's own code is evaluation-only (its training scripts are missing), so the methods here
are this tutorial's, written from the paper's description; notebook 08 uses them at teaching scale.
"""

from cdp_tutorial.edgecompress.cascade import (Cascade, CascadeOutcome, cascade_curve, choose_threshold,
                                               expected_latency, simulate_cascade, softmax_margin)
from cdp_tutorial.edgecompress.compound import (CompoundConfig, CompoundSearch, compound_config,
                                                measure_contributions, search_compound, train_config)
from cdp_tutorial.edgecompress.cropping import (box_iou, cam_boxes, crop_images, foreground_predictor, grad_cam,
                                                predict_boxes, train_predictor)
from cdp_tutorial.edgecompress.images import (at_resolution, class_probabilities, holdout_validation, model_outputs,
                                              normalise, resize_images, with_images)

__all__ = ["Cascade", "CascadeOutcome", "CompoundConfig", "CompoundSearch", "at_resolution", "box_iou",
           "cam_boxes", "cascade_curve", "choose_threshold", "class_probabilities", "compound_config",
           "crop_images", "expected_latency", "foreground_predictor", "grad_cam", "holdout_validation", "measure_contributions",
           "model_outputs", "normalise", "predict_boxes", "resize_images", "search_compound", "simulate_cascade",
           "softmax_margin", "train_config", "train_predictor", "with_images"]
