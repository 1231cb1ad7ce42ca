"""Losses of the studied papers, each a small pure function of tensors citing paper and equation;
one module per paper, every name importable from here (``losses.ccc_loss``).

Papers:
- SS-MFAR: Gera et al., "SS-MFAR: Semi-supervised multi-task facial affect recognition",
  2022 (Eq. 1-9).
- DM: Kollias, Sharmanska, Zafeiriou, "Distribution matching for multi-task learning of
  classification tasks", AAAI 2024 (Case Study I, Eq. 2-6; Case Study II for the generic
  class/attribute forms).
- teacher-student: Vu, Beurton-Aimar, Marchand, "Multitask multi-database emotion recognition",
  ABAW 2021 (Eq. 1-10), with Deng, Chen, Shi (FG 2020) for the VA bins and the temperature.

Label conventions follow the batch contract: expression -1 and AU -1 mean "no label";
valence-arousal rows without a label are selected out by the caller (a -5 reaching
:func:`ccc_loss` is an error). A loss over an empty selection returns a zero that is still attached
to the graph, so a batch without labels for a task adds nothing and ``backward()`` still works.
"""

from __future__ import annotations

from affectlib.losses._common import EPS
from affectlib.losses.coupling import (
    DM_FORMS,
    SCA_FORMS,
    class_attribute_coannotation,
    class_attribute_matching,
    distribution_matching,
    soft_coannotation,
)
from affectlib.losses.emotionet import (
    batch_balance_mask,
    coregularisation_jsd,
    masked_au_bce,
    multiview_weight_similarity,
)
from affectlib.losses.pretraining import (
    au_intensity_loss,
    cosface_loss,
    rmse_ccc_loss,
    sinkhorn_codes,
    swav_loss,
)
from affectlib.losses.ssmfar import (
    CE_REDUCTIONS,
    LAMBDAS,
    ExprLossWeights,
    adaptive_thresholds,
    au_bce,
    au_bce_per_image,
    au_pos_weight,
    ccc_loss,
    expr_class_weights,
    pseudo_label_ce,
    symmetric_kl,
    weighted_ce,
)
from affectlib.losses.teacher_student import (
    TS_LAMBDA,
    TS_TEMPERATURE,
    VA_BINS,
    TSTerms,
    distillation_kl,
    expr_ce_per_sample,
    teacher_student_loss,
    va_bin_centres,
    va_bin_edges,
    va_bins_ce_per_sample,
    va_ccc_term,
    va_expectation,
    va_to_bins,
)

__all__ = [
    "EPS",
    "expr_class_weights",
    "au_pos_weight",
    "CE_REDUCTIONS",
    "weighted_ce",
    "au_bce",
    "au_bce_per_image",
    "ccc_loss",
    "adaptive_thresholds",
    "symmetric_kl",
    "pseudo_label_ce",
    "ExprLossWeights",
    "LAMBDAS",
    "DM_FORMS",
    "SCA_FORMS",
    "class_attribute_matching",
    "class_attribute_coannotation",
    "distribution_matching",
    "soft_coannotation",
    "multiview_weight_similarity",
    "coregularisation_jsd",
    "batch_balance_mask",
    "masked_au_bce",
    "sinkhorn_codes",
    "swav_loss",
    "cosface_loss",
    "rmse_ccc_loss",
    "au_intensity_loss",
    "VA_BINS",
    "TS_TEMPERATURE",
    "TS_LAMBDA",
    "va_bin_edges",
    "va_bin_centres",
    "va_to_bins",
    "va_expectation",
    "expr_ce_per_sample",
    "va_bins_ce_per_sample",
    "va_ccc_term",
    "distillation_kl",
    "TSTerms",
    "teacher_student_loss",
]
