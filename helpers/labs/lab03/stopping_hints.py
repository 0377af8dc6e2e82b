"""Lab 3, exercise 4's hints: the shared ones, and each framework's wording of the others.

:mod:`helpers.labs.lab03.early_stopping` names them; the adapters
(:mod:`helpers.labs.lab03.torch`, :mod:`helpers.labs.lab03.jax`) add their framework's table
and explain ``SIGNATURE`` errors (the loss and the model swapped, ``val_loss.item()`` on a
float, ``min_delta`` without its default) with ``es_signature``.
"""

from __future__ import annotations

from helpers.labs.kit import Hints

__all__ = ["HINTS", "JAX_HINTS", "SIGNATURE", "TORCH_HINTS"]

# Errors from a step or constructor that does not keep the exercise's signatures.
SIGNATURE = (
    r"between instances of 'Sequential' and 'float'"
    r"|'float' object has no attribute '(item|detach|cpu|numpy)'"
    r"|required positional argument: 'min_delta'"
)

# Known mistakes shared by both frameworks; the framework ones (the snapshot's copy, the
# buffers, restoring in place) are worded in TORCH_HINTS and JAX_HINTS below.
# tests/labs/test_lab03.py proves each hint is produced.
HINTS = Hints(
    {
        "es_not_bool": "step must return a bool every epoch, False to go on and True to "
        "stop: return self.wait >= self.patience (a missing return gives None)",
        "es_tie": "an equal loss is no improvement: compare strictly, val_loss < "
        "self.best_loss - self.min_delta, not <=",
        "es_min_delta_ignored": "an improvement must beat the best by more than min_delta: "
        "val_loss < self.best_loss - self.min_delta (min_delta was left out)",
        "es_min_delta_sign": "subtract min_delta: val_loss < self.best_loss - self.min_delta. "
        "With + a loss slightly worse than the best counts as an improvement",
        "es_nan": "a NaN loss is never an improvement: compare with < (any comparison with "
        "NaN is False), and never write not (val_loss >= ...), which is True for NaN",
        "es_no_reset": "set the count of epochs without improvement back to 0 on every "
        "improvement: patience counts consecutive epochs",
        "es_stops_early": "True one epoch too early: count the epochs without improvement "
        "and return True when the count reaches patience (wait >= patience, after adding "
        "this epoch)",
        "es_stops_late": "True one epoch too late: add this epoch to the count first, then "
        "return wait >= patience (not >, nor a count checked before it is increased)",
        "es_best_zero": "start best_loss at float('inf'): starting at 0, no loss is ever an "
        "improvement",
        "es_best_init": "best_loss must be float('inf') before the first step, so that the "
        "first epoch is an improvement like any other, with its snapshot",
        "es_first_epoch": "the first epoch can be the best: treat it like any improvement "
        "(best_loss starts at inf), recording its loss, its epoch and a snapshot",
        "es_stop_exact": "keep returning True once the count has reached patience: "
        "wait >= patience, not wait == patience, and no reset of the count when you "
        "return True (a loop that goes on would never stop)",
        "es_min_delta_relative": "min_delta is an absolute margin: val_loss < "
        "self.best_loss - self.min_delta, not self.best_loss * (1 - self.min_delta)",
        "es_previous": "compare each loss with the best loss so far, not with the previous "
        "epoch's: an improvement is val_loss < self.best_loss - self.min_delta",
        "es_restore_reversed": "restore copied the model into the snapshot instead of the "
        "snapshot into the model: the model you are given is the target",
        "es_wrong_stop": "step returned the wrong value: count the epochs since the last "
        "improvement (val_loss < best_loss - min_delta) and return True when the count "
        "reaches patience",
        "es_best_loss": "best_loss must be the lowest loss that counted as an improvement, "
        "the float you were given",
        "es_best_epoch": "best_epoch is the 0-based index of the step call with the best "
        "loss: count the calls of step and record the count on each improvement",
        "es_attributes": "set best_loss (float('inf')) and best_epoch in __init__ and keep "
        "them up to date in step: the check reads both",
        "es_every_epoch": "the last epoch's weights were restored: take the snapshot only on "
        "an improvement, inside the if, not every epoch",
        "es_wrong_epoch": "the restored weights are another epoch's, not the best one's: "
        "take the snapshot when you record best_loss and best_epoch, of the model step "
        "was given in that call",
        "es_restore_wrong": "restore must load the best epoch's snapshot, all of it "
        "(parameters and buffers), into the model it is given",
        "es_not_restored": "restore left the model as it was: load the snapshot into the "
        "model you are given, in place",
        "es_restore_once": "restore worked once, then not again: keep the snapshot after "
        "loading it (no del, pop or = None), so that restore can be called again",
        "es_shared": "this instance's results are another EarlyStopping's: the check runs "
        "several at once, so keep all the state in self, set in __init__ (a class attribute "
        "such as history = [] or best = {}, a global or a file with a fixed name is shared "
        "by every instance)",
        "es_best_type": "best_loss must be a Python float: float('inf') before the first "
        "step, then the val_loss you were given, as it is (not a tensor or an array)",
        "es_signature": "keep the exercise's signatures: EarlyStopping(patience, "
        "min_delta=0.0), step(val_loss, model) with the loss first, a Python float (no "
        ".item() needed), and restore(model)",
    }
)

TORCH_HINTS = {  # PyTorch's wording
    "es_alias": "your snapshot changed with the model: model.state_dict() returns "
    "tensors that share storage with the parameters and buffers, so every in-place "
    "optimizer step changes it too (so do dict(...), .copy(), .detach(), .data and a "
    "list of model.parameters()). Copy it: "
    "copy.deepcopy(model.state_dict()) or {k: v.detach().clone() for k, v in "
    "model.state_dict().items()}",
    "es_buffers_lost": "the parameters came back but not the buffers (batch-norm's "
    "running mean and variance): snapshot model.state_dict(), which holds both, not "
    "model.parameters() or named_parameters()",
    "es_model_kept": "you kept the model object itself, which goes on training: keep "
    "a copy of its state, copy.deepcopy(model.state_dict()) (or copy.deepcopy(model))",
    "es_rebind": "restore left the caller's model as it was, though your snapshot "
    "holds the best weights: assigning to the name model inside restore, or returning "
    "a model, changes nothing the caller sees. Load the snapshot into the model object "
    "you are given: model.load_state_dict(self.best_state)",
    "es_restore_twice": "after the first restore the model shared the snapshot's "
    "tensors (load_state_dict(..., assign=True), or the snapshot's modules or tensors "
    "put into the model), so training changed the snapshot: load_state_dict without "
    "assign copies the values into the model's own tensors",
}

JAX_HINTS = {  # Flax NNX's wording
    "es_alias": "your snapshot changed with the model: nnx.state(model) (and the "
    "state of nnx.split) holds the model's live Variables, whose values training "
    "replaces (so do dict(...) of it and a list or dict of the Variables themselves). "
    "Keep a copy: nnx.clone(model), or the arrays, "
    "nnx.to_pure_dict(nnx.state(model)) (JAX arrays are immutable; Variables are not)",
    "es_buffers_lost": "the parameters came back but not the batch statistics "
    "(BatchNorm's mean and var, nnx.BatchStat): snapshot the whole nnx.state(model), "
    "not nnx.state(model, nnx.Param)",
    "es_model_kept": "you kept the model object itself, which goes on training: keep "
    "a copy, nnx.clone(model), or a pure dict of its arrays",
    "es_rebind": "restore left the caller's model as it was, though your snapshot "
    "holds the best weights: assigning to the name model inside restore, or returning "
    "a model, changes nothing the caller sees. Write the snapshot into the model object "
    "you are given: nnx.update(model, snapshot)",
    "es_restore_twice": "after the first restore the model shared the snapshot's "
    "Variables (its submodules or Variables put into the model), so training changed "
    "the snapshot: nnx.update(model, snapshot) sets the values of the model's own "
    "Variables instead",
}
