"""Lab 5's hints for exercises 1-4 that one framework words its own way, or alone declares.

``TORCH`` and ``JAX`` are the last tables of :data:`helpers.labs.lab05.torch.HINTS` and
:data:`helpers.labs.lab05.jax.HINTS`: they override the shared wording of a key
(``crop_loop``, ``stats_twice``) and add the mistakes only one framework allows (PyTorch's
in-place changes and float64 losses, JAX's traced values and lost state updates). The
adapters' error tables map framework messages to some of them.
"""

from __future__ import annotations

__all__ = ["JAX", "TORCH"]

TORCH = {
    "inputs_changed": "leave the inputs as they are: work on new tensors (F.pad, "
    "indexing and arithmetic return new ones); an assignment into an input "
    "(images[...] = ..., offsets[...] = ...) or an in-place operation (-=, sub_, flip_) "
    "changes the caller's tensor",
    "crop_loop": "crop the whole batch in one gather on the device, "
    "padded[batch, rows[:, :, None], cols[:, None, :]] with (B, H) rows and (B, W) "
    "columns: no Python loop over the images and no copy to NumPy (the check counts the "
    "operations on a batch three times larger)",
    "flip_bool_arith": "flips is a bool tensor: choose per image with "
    "torch.where(flips[:, None, None, None], crop.flip(2), crop); 1 - flips is not "
    "defined for bools (~flips negates them)",
    "loss_float64": "keep the loss in float32, the logits' dtype: a float64 loss comes "
    "from float64 targets (np.eye, torch.eye(..., dtype=torch.float64), .double()) and "
    "runs everything after it in double precision, slow on a GPU; build the targets "
    "with F.one_hot(labels, C).float()",
    "step_no_graph": "let autograd record the loss: no torch.no_grad() around the "
    "forward pass and no .detach() before loss.backward(); detach only the loss you "
    "return, after the step",
    "step_smoothing_keyword": "pass the smoothing by name, F.cross_entropy(logits, "
    "labels, label_smoothing=smoothing): the third positional parameter of "
    "F.cross_entropy is weight, a tensor of per-class weights",
    "stats_twice": "the weights are right but BatchNorm's running statistics are not: "
    "run the model once per step; every forward pass in training mode (under "
    "torch.no_grad too: a second one for a log, or one for the loss and another for "
    "backward) moves them again",
}

JAX = {
    "crop_loop": "write the crop of one padded image (jax.lax.dynamic_slice and "
    "jnp.where) and jax.vmap it over the batch: no Python loop over the images, and no "
    "int(...), .tolist() or np.asarray(...) of the offsets, which fail under jax.jit (the "
    "check traces your function and counts its operations on a batch three times larger)",
    "slice_rank": "jax.lax.dynamic_slice takes one start and one size per axis of the "
    "padded image (H + 2 * pad, W + 2 * pad, C): starts (offset[0], offset[1], 0), sizes "
    "(H, W, C)",
    "step_one_hot": "optax.smooth_labels and optax.softmax_cross_entropy take float "
    "one-hot targets (B, C), not the integer labels (B,): make them with "
    "jax.nn.one_hot(labels, logits.shape[-1]) before smoothing",
    "stats_lost": "the weights are right but BatchNorm's running statistics never "
    "moved: differentiate with nnx.value_and_grad (or nnx.grad), not jax.value_and_grad "
    "or jax.grad; only Flax's transforms carry the model's state updates back out",
    "stats_twice": "the weights are right but BatchNorm's running statistics are not: "
    "call the loss function once per step, through nnx.value_and_grad, which returns the "
    "loss with the gradients; nnx.grad and then loss_fn(model) again runs the model twice "
    "in training mode, and each run moves them",
}
