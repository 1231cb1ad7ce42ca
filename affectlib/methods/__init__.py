"""Training methods: what one batch costs, as a small object the training loop calls.

A method is a :class:`MethodSpec`: a ``loss(model, batch, state, ctx) -> (loss, logs)`` function, the
augmented views it reads from the batch, a state built from the training table before the first
step (class weights, thresholds, ...), optional per-epoch hooks and its default options.
:func:`affectlib.train.fit` knows nothing of a particular paper; it only calls these.

- ``state`` is a plain dict (tensors, numbers) that the checkpoint saves and a resumed run restores,
  so whatever a method learns besides the weights (e.g. SS-MFAR's adaptive thresholds) survives a
  restart. A method may update it in place inside ``loss`` or the hooks.
- ``ctx`` is a :class:`StepContext`: epoch (from 1, as Algorithm 1 of SS-MFAR counts), global step,
  device and the resolved options.
- ``batch`` is the batch dict of the data contract (``image`` uint8, ``expr``, ``au``, ``va``, the
  masks ``has_expr`` / ``has_au`` / ``has_va`` / ``au_mask``) on the training device, plus, per
  name in ``MethodSpec.views``, the augmented uint8 images (``batch["weak"]``, ``batch["strong"]``)
  and which of them were flipped (``batch["weak_flipped"]``, ...). Methods read the masks, never the
  label markers. Under DDP ``model`` is the wrapped network: pass all views through one forward
  call (concatenated) rather than several.
- ``logs`` maps names to scalar tensors (detached), averaged per epoch into the metrics CSV.

:data:`METHODS` is the registry (:mod:`.base`): ``register`` adds a spec; a variant is a
``dataclasses.replace`` of an existing spec with other options (see ``mfar.py``). A method that
owns its backward pass carries its own ``MethodSpec.step`` (``coupling.py``: GradNorm, MGDA-UB).

One module per paper, each registering its methods on import; this is the one place that imports
every one of them: ``mfar.py`` (MFAR, SS-MFAR and the variants of SS-MFAR Table 1),
``pretrain.py`` (the identity and AffectNet-format pretraining objectives), ``coupling.py``
(Kollias et al. 2024: NC MT, C MT, S-T NC MT, GradNorm, MGDA-UB), ``teacher_student.py`` (the
ABAW 2021 teacher and student, Eq. 7-10), ``emotionet.py`` (Wang et al. 2020, TAL EmotioNet: the
multi-view co-regularised network and its Table 3 ablations).
"""

from affectlib.methods import (  # noqa: F401  (they register themselves)
    coupling,
    emotionet,
    mfar,
    pretrain,
    teacher_student,
)
from affectlib.methods.base import (
    METHODS,
    Batch,
    EpochHook,
    InitStateFn,
    LossFn,
    MethodSpec,
    State,
    StepContext,
    StepFn,
    get,
    no_state,
    register,
    resolve_options,
)

__all__ = [
    "METHODS",
    "Batch",
    "EpochHook",
    "InitStateFn",
    "LossFn",
    "MethodSpec",
    "State",
    "StepContext",
    "StepFn",
    "coupling",
    "emotionet",
    "get",
    "mfar",
    "no_state",
    "pretrain",
    "register",
    "resolve_options",
    "teacher_student",
]
