"""Lab 4's hints in each framework's words: the mistakes only one framework allows, and the
wording of the ones whose fix names a framework's functions.

:mod:`helpers.labs.lab04.jax` and :mod:`helpers.labs.lab04.torch` add :data:`JAX` and
:data:`TORCH` to the shared hints (:mod:`helpers.labs.lab04.mistakes` and
:mod:`helpers.labs.lab04.ste`).
"""

from __future__ import annotations

__all__ = ["JAX", "TORCH"]

# Known mistakes that only JAX allows, and JAX's wording of framework-dependent ones.
JAX: dict[str, str] = {
    "retrace": "the function compiles again at every call: decorate it once with "
    "@jax.jit (at module level) instead of calling jax.jit(...) inside it, which "
    "makes a new function, and a new compilation, each time",
    "key_reused": "a key was reused across layers: create one nnx.Rngs(seed) and pass "
    "the same object to every layer (it hands each one a fresh key); nnx.Rngs(seed) "
    "per layer gives layers of the same shape the same weights",
    "no_update": "apply the gradients: optimizer.update(model, grads) after "
    "nnx.value_and_grad",
    "wrong_axis": "shard the batch axis, axis 0, only: NamedSharding(mesh, P('data')) "
    "(P(None, 'data') splits the features; a mesh axis can split one array axis only)",
    "replicated": "P() copies the whole batch to every device; P('data') splits its "
    "first axis over the mesh axis 'data'",
    "map_params": "vmap maps every argument over axis 0 unless told otherwise: the "
    "parameters are shared by all examples, so in_axes=(None, 0, 0)",
    "not_sharded": "place the batch with a NamedSharding: "
    "jax.device_put(x, NamedSharding(mesh, P('data')))",
    "axis_name": "name the mesh's axis as it is, 'data': P('data') (a PartitionSpec "
    "names mesh axes, and this mesh has only 'data')",
    "sharding_not_array": "return the array, placed: jax.device_put(x, sharding), not "
    "the sharding itself",
    "dtype": "keep float32, the dtype of the inputs: no .astype(jnp.float16), bfloat16 "
    "or float64 on the way",
    "wrt_x": "differentiate with respect to the parameters: jax.grad(loss_fn) "
    "differentiates its first argument, params (argnums=0), not x",
    "map_labels": "map y along with x: in_axes=(None, 0, 0) gives each example its own "
    "label (with in_axes=(None, 0, None) every example is scored against the whole y)",
    "flatten_leaves": "W's and b's gradients have different shapes, (B, D, C) and "
    "(B, C): flatten each per example, g.reshape(B, -1), and sum its squares over axis 1",
    "not_seeded": "build every layer from nnx.Rngs(seed), the seed given: two calls "
    "with the same seed must give the same weights",
    "class_not_instance": "return a network, an instance: MLP(nnx.Rngs(seed)), not "
    "the class MLP",
    "state_not_module": "return the nnx.Module itself, not its nnx.state(...)",
    "rngs_type": "pass an nnx.Rngs(seed) as rngs, not a key: the layers draw their "
    "keys from it (rngs.params())",
    "nll_on_logits": "the cross-entropy is -log softmax(logits)[y], not -logits[y]: "
    "use optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()",
    "double_softmax": "optax.softmax_cross_entropy_with_integer_labels applies the "
    "log-softmax itself: give it the logits, model(x), not jax.nn.softmax(model(x))",
    "jax_jit": "your step updates the model when run as it is, but jax.jit runs it on "
    "copies of the model and the optimizer, so the update is lost: decorate it with "
    "@nnx.jit, which writes the changes back into your objects",
    "loss_number_jit": "inside a jitted function the arrays are tracers, with no value "
    "yet: float(...), int(...) and .item() fail there. Return the loss itself, a 0-d "
    "array",
    "integer_labels": "optax.softmax_cross_entropy expects one-hot labels (B, C): with "
    "integer labels (B,) use optax.softmax_cross_entropy_with_integer_labels(logits, y)",
    "shard_x_shape": "cut x into (n_shards, B / n_shards, D): "
    "x.reshape(n_shards, -1, *x.shape[1:]) keeps each example's D features together",
    "shard_y": "shard y like x, y.reshape(n_shards, -1), and map over both: "
    "in_axes=(None, 0, 0)",
    "ste_numpy": "compute with jax.numpy: jnp.round(x), not np.round(np.asarray(x)): "
    "a NumPy array leaves JAX, so no gradient reaches x and jit cannot trace it",
    "ste_plain_round": "round's derivative is 0 almost everywhere, so jnp.round passes "
    "no gradient back; the STE replaces it by 1: a jax.custom_vjp whose bwd returns the "
    "incoming cotangent unchanged, (g,) (or x + jax.lax.stop_gradient(jnp.round(x) - x))",
    "ste_no_detach": "x + jnp.round(x) - x has round's gradient, 0: the two x terms "
    "cancel in the backward pass too. Stop the gradient of the whole correction, "
    "x + jax.lax.stop_gradient(jnp.round(x) - x), so that only the first x's gradient, "
    "1, remains (stopping round(x)'s alone leaves x - x, whose gradient is 0)",
    "batch_of_one": "a batch of one is xi[None], (1, D), with its label yi[None], (1,): "
    "a 0-d label yi against logits (1, C) is not a batch of labels",
    "nnx_list": "NNX takes a plain Python list of layers for static data: wrap it, "
    "nnx.List([...]), or make each layer an attribute (self.linear1 = nnx.Linear(...))",
    "params_hidden": "keep every weight in an nnx.Param, as nnx.Linear does: a plain array "
    "attribute is no parameter, so nnx.value_and_grad and the optimizer (wrt=nnx.Param) "
    "would never train it",
    "model_dtype": "keep the layers' default float32 parameters: no param_dtype or dtype "
    "jnp.bfloat16, float16 or float64 (the inputs are float32)",
    "shard_reshape": "return x with its own shape, (B, D): the sharding does the "
    "splitting, each device holding B / devices rows; the (devices, B / devices, D) stack "
    "is the PyTorch lab's version",
    "shard_axis": "average over the shard axis only, axis 0: jax.tree.map(lambda g: "
    "g.mean(axis=0), grads) keeps each parameter's shape, (D, C) and (C,); jnp.mean(g) "
    "averages every entry into one number",
    "dp_copies": "after jax.lax.pmean inside vmap every shard holds the same mean: return "
    "one copy, jax.tree.map(lambda g: g[0], grads), or skip pmean and average outside, "
    "g.mean(axis=0)",
    "dp_mapped_sizes": "vmap needs the same size on axis 0 of every argument it maps: "
    "params are shared, in_axes=(None, 0, 0), and x and y are cut alike, "
    "x.reshape(n_shards, -1, D) and y.reshape(n_shards, -1), n_shards first in both",
    "ste_detached_x": "stop the gradient of the correction, not of x: "
    "x + jax.lax.stop_gradient(jnp.round(x) - x); jax.lax.stop_gradient(x) + "
    "(jnp.round(x) - x) has the gradient 0 - 1 = -1",
    "ste_ties": "round ties to the even integer, as jnp.round does (2.5 -> 2, "
    "-0.5 -> -0, 1.5 -> 2): jax.lax.round rounds half away from zero unless told "
    "otherwise (-2.5 -> -3), and jnp.floor(x + 0.5) rounds every tie up",
    "ste_ones": "pass the incoming cotangent through as it is: bwd returns (g,), not "
    "(jnp.ones_like(g),), which is right only when the incoming gradient is all ones",
    "ste_custom_vjp": "a jax.custom_vjp needs round_ste.defvjp(fwd, bwd): fwd(x) "
    "returns a pair, (output, residuals), here (jnp.round(x), None); bwd(residuals, g) "
    "returns one cotangent per argument, as a tuple: (g,)",
    "ste_fwd_rule": "jax.grad and jax.vjp run fwd instead of the function itself: fwd "
    "must return the same output, (jnp.round(x), residuals), not (x, ...)",
}

# Known mistakes that only PyTorch allows, and PyTorch's wording of framework-dependent ones.
TORCH: dict[str, str] = {
    "key_reused": "the generator was reseeded between layers: call torch.manual_seed(seed) "
    "once, before the first layer; reseeding before each layer gives layers of the same "
    "shape the same weights",
    "no_update": "the weights did not change: call, in this order, "
    "optimizer.zero_grad(), loss.backward(), optimizer.step() (zero_grad() between "
    "backward() and step() erases the gradients; step() before backward() has none)",
    "zero_grad": "clear the gradients at every step with optimizer.zero_grad(): "
    "backward() adds to .grad, so the second step used the sum of both gradients",
    "wrong_axis": "split the batch axis, dim 0: x.reshape(world_size, -1, *x.shape[1:]) "
    "(or torch.stack(x.chunk(world_size))), not the features",
    "map_params": "vmap maps every argument over dim 0 unless told otherwise: the "
    "parameters are shared by all examples, so in_dims=(None, 0, 0)",
    "shard_shape": "return (world_size, B / world_size, D), the shard first: "
    "x.chunk(n) cuts n pieces, while x.split(k) cuts pieces of k rows",
    "autograd_in_func": "inside torch.func transforms differentiate with "
    "torch.func.grad(loss_fn)(params, ...): the params passed in do not require grad, "
    "so loss.backward() and torch.autograd.grad have nothing to differentiate",
    "interleaved": "each shard is a contiguous block of rows, as P('data') gives in "
    "JAX: shard r holds rows r*B/n to (r+1)*B/n - 1, not every n-th row",
    "keep_rows": "each shard holds whole rows of x, D features each: "
    "x.reshape(world_size, -1, *x.shape[1:]) gives (world_size, B / world_size, D)",
    "slice_end": "x[a:b] stops before row b: shard r is x[r * k:(r + 1) * k] with "
    "k = B // world_size (no - 1)",
    "one_shard": "return every shard, stacked: (world_size, B / world_size, D); process "
    "r takes result[r], but the function returns them all",
    "dtype": "keep float32, the dtype of the inputs: no .double() or torch.float64 (nor "
    "half precision) on the way",
    "wrt_x": "differentiate with respect to the parameters: torch.func.grad(loss_fn) "
    "differentiates its first argument, params (argnums=0), not x",
    "map_labels": "map y along with x: in_dims=(None, 0, 0) gives each example its own "
    "label (with in_dims=(None, 0, None) every example gets the whole y)",
    "flatten_leaves": "W's and b's gradients have different shapes, (B, D, C) and "
    "(B, C): flatten each per example, g.reshape(B, -1), and sum its squares over dim 1",
    "not_seeded": "seed the generator with torch.manual_seed(seed) before creating the "
    "layers (at the start of build_mlp): two calls with the same seed must give the "
    "same weights",
    "class_not_instance": "return a network, an instance: MLP(), not the class MLP",
    "state_not_module": "return the nn.Module itself, not its state_dict()",
    "model_dtype": "keep the layers' default float32 parameters: no .double() or "
    "dtype=torch.float64 (the inputs are float32)",
    "nll_on_logits": "F.nll_loss expects log-probabilities: use "
    "F.cross_entropy(model(x), y) on the logits (or nll_loss on log_softmax(logits))",
    "double_softmax": "F.cross_entropy applies the log-softmax itself: give it the "
    "logits, model(x), not softmax(model(x))",
    "no_grad_loss": "compute the loss with gradients on, not under torch.no_grad() nor "
    "from detached outputs: loss.backward() needs the graph from the weights to the loss",
    "integer_targets": "F.cross_entropy takes the integer labels y (B,) as they are: "
    "no one-hot encoding",
    "loss_detach": "return loss.detach(): the same 0-d tensor without the graph of this "
    "step, which would otherwise stay in memory as long as the loss is kept",
    "shard_x_shape": "cut x into (n_shards, B / n_shards, D): "
    "x.reshape(n_shards, -1, *x.shape[1:]) keeps each example's D features together",
    "shard_y": "shard y like x, y.reshape(n_shards, -1), and map over both: "
    "in_dims=(None, 0, 0)",
    "ste_numpy": "compute with torch: torch.round(x) or x.round(), not np.round or "
    ".numpy(), which leave autograd (no gradient could reach x)",
    "ste_plain_round": "round's derivative is 0 almost everywhere, so torch.round "
    "passes no gradient back; the STE replaces it by 1: a torch.autograd.Function "
    "whose backward returns grad_output unchanged (or x + (torch.round(x) - x).detach())",
    "ste_no_detach": "x + torch.round(x) - x has round's gradient, 0: the two x terms "
    "cancel in the backward pass too. Detach the whole correction, "
    "x + (torch.round(x) - x).detach(), so that only the first x's gradient, 1, remains "
    "(detaching torch.round(x) alone leaves x - x, whose gradient is 0)",
    "batch_of_one": "a batch of one is xi[None], (1, D), with its label yi[None], (1,): "
    "F.cross_entropy reads a 0-d label yi against logits (1, C) as a batch of no labels",
    "input_in_place": "leave the inputs as they are: an in-place operation (x.mul_(...), "
    "x -= ..., x.resize_(...), x.unsqueeze_(...)) changes the caller's tensor; the "
    "out-of-place form (x * 2, x - ..., x.reshape(...)) returns a new one",
    "params_hidden": "register every layer: an attribute (self.linear1 = nn.Linear(...)), "
    "an nn.ModuleList or an nn.Sequential; a plain Python list hides its layers from "
    "model.parameters(), so an optimizer would never train them",
    "shard_axis": "average over the shard dim only, dim 0: {k: g.mean(0) for k, g in "
    "grads.items()} keeps each parameter's shape, (D, C) and (C,); g.mean() averages "
    "every entry into one number",
    "dp_mapped_sizes": "vmap needs the same size on dim 0 of every argument it maps: "
    "params are shared, in_dims=(None, 0, 0), and x and y are cut alike, "
    "x.reshape(n_shards, -1, D) and y.reshape(n_shards, -1), n_shards first in both",
    "ste_no_graph": "the result is cut off from x, so no gradient reaches x: detach only "
    "the correction, x + (torch.round(x) - x).detach(), not the whole result (and do "
    "not compute it under torch.no_grad())",
    "ste_detached_x": "detach the correction, not x: x + (torch.round(x) - x).detach(); "
    "x.detach() + (torch.round(x) - x) has the gradient 0 - 1 = -1",
    "ste_ties": "round ties to the even integer, as torch.round does (2.5 -> 2, "
    "-0.5 -> -0, 1.5 -> 2): torch.floor(x + 0.5) rounds every tie up, and rounding half "
    "away from zero rounds -2.5 to -3",
    "ste_ones": "pass the incoming gradient through as it is: backward returns "
    "grad_output, not torch.ones_like(grad_output), which is right only when the "
    "incoming gradient is all ones",
    "ste_apply": "call a torch.autograd.Function through apply, RoundSTE.apply(x), with "
    "forward(ctx, x) and backward(ctx, grad_output) as @staticmethods (RoundSTE()(x) "
    "is the removed legacy API)",
    "ste_in_place": "leave x as it is and return a new tensor: x.data = torch.round(x), "
    "x.round_() or an in-place forward rounds the caller's tensor (a weight would lose "
    "its unrounded value); x + (torch.round(x) - x).detach() creates a new one",
}
