# %% [markdown] tags=["shared"]
# ## 2.4 Convolution and pooling
#
# A dense layer connects every input to every output and ignores what an image is made of:
# neighbouring pixels belong together, and a pattern (an edge, a stroke) means the same wherever
# it appears. A **convolutional layer** {cite}`lecun1998gradient` slides one small set of
# weights, a *kernel* of $k \times k$ weights per input channel, across the image and computes a
# weighted sum at every position. For image $n$, output channel $o$ and output pixel $(i, j)$,
# with stride $s$ and the input padded with $p$ zeros on each side,
#
# $$
# y_{n,o,i,j} = b_o + \sum_{c=1}^{C_\text{in}} \sum_{u=0}^{k-1} \sum_{v=0}^{k-1}
#     w_{o,c,u,v}\; x_{n,c,\,s i+u,\,s j+v},
# \qquad
# H_\text{out} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .
# $$
#
# Strictly this is a cross-correlation (the kernel is not flipped); every framework calls it
# convolution, and a learned kernel does not care. The same $C_\text{out} \times C_\text{in}
# \times k \times k$ weights serve every position, so the layer has far fewer parameters than a
# dense one and finds a pattern wherever it is. First the formula as loops, on an input small
# enough to follow.

# %% [markdown]
# PyTorch stores a batch of images as `(N, C, H, W)`, "NCHW": batch, channels, height, width,
# and a convolution's weights as `(C_out, C_in, k, k)`.

# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, H_out, W_out): the formula, one output
    pixel at a time."""
    x = F.pad(x, (padding, padding, padding, padding))  # zeros around H and W
    n_images, _, height, width = x.shape
    c_out, _, k, _ = w.shape
    h_out, w_out = (height - k) // stride + 1, (width - k) // stride + 1
    y = torch.zeros(n_images, c_out, h_out, w_out, dtype=x.dtype)
    for n in range(n_images):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    patch = x[
                        n, :, i * stride : i * stride + k, j * stride : j * stride + k
                    ]
                    y[n, o, i, j] = (w[o] * patch).sum() + b[o]  # sum over c, u, v
    return y


torch.manual_seed(0)
x_small = torch.randn(1, 2, 5, 5, dtype=torch.float64)  # (N, C, H, W)
w_small = torch.randn(3, 2, 3, 3, dtype=torch.float64)  # (C_out, C_in, k, k)
b_small = torch.randn(3, dtype=torch.float64)
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    ours = conv2d_loops(x_small, w_small, b_small, stride, padding)
    theirs = F.conv2d(x_small, w_small, b_small, stride=stride, padding=padding)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)
    print(
        f"stride {stride}, padding {padding}: output {tuple(ours.shape)} equals F.conv2d"
    )

# %% [markdown] tags=["shared"]
# Four nested Python loops are far too slow for real images. The vectorised form first gathers
# every $k \times k$ patch the kernel visits into one array, indexed by image, output position
# $(i, j)$ and the patch's channel and pixel $(c, u, v)$ (the "im2col" idea), then does all the
# weighted sums at once as a single `einsum`: multiply each patch by each output channel's kernel
# and sum over $c, u, v$.

# %% [markdown]
# `Tensor.unfold(dim, size, step)` gathers windows along one dimension; applied to H and then W
# it returns the patches as a *view* of the padded input (strides into the same memory, no
# copy) until `einsum` reads them.


# %%
def conv2d(x, w, b, stride=1, padding=0):
    """x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, H_out, W_out), vectorised."""
    k = w.shape[-1]
    x = F.pad(x, (padding, padding, padding, padding))
    patches = x.unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    return torch.einsum("ncijuv,ocuv->noij", patches, w) + b[:, None, None]


def max_pool2d(x, k, stride=None):
    """x (N, C, H, W) -> (N, C, H_out, W_out): the largest value of each k x k window."""
    stride = k if stride is None else stride
    patches = x.unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    return patches.amax(dim=(-2, -1))


x_batch = torch.randn(8, 3, 28, 28, dtype=torch.float64)  # (N, C, H, W)
w_batch = torch.randn(16, 3, 5, 5, dtype=torch.float64)  # (C_out, C_in, k, k)
b_batch = torch.randn(16, dtype=torch.float64)
for stride, padding in [(1, 2), (2, 1)]:
    ours = conv2d(x_batch, w_batch, b_batch, stride, padding)
    theirs = F.conv2d(x_batch, w_batch, b_batch, stride=stride, padding=padding)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-10)
    print(
        f"conv2d, stride {stride}, padding {padding}: {tuple(ours.shape)} equals F.conv2d"
    )
for k, stride in [(2, 2), (3, 2)]:
    ours = max_pool2d(x_batch, k, stride)
    np.testing.assert_array_equal(
        ours.numpy(), F.max_pool2d(x_batch, k, stride).numpy()
    )
    print(
        f"max_pool2d, window {k}, stride {stride}: {tuple(ours.shape)} equals F.max_pool2d"
    )

# %% [markdown] tags=["shared"]
# **Pooling** has no weights: max pooling keeps the largest value of each window, so a feature
# that moved by a pixel inside the window gives the same output, and a stride of 2 halves the
# height and width. It is the same patch gathering as above with `max` in place of the weighted
# sum.
#
# ### Receptive fields
#
# Each output pixel of a layer sees a square of the *input image*, its **receptive field**. Going
# through a layer with kernel $k_l$ and stride $s_l$, it grows by $k_l - 1$ times the *jump*
# $j_{l-1}$, the distance in input pixels between two neighbouring pixels of the layer below:
#
# $$
# r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad r_0 = j_0 = 1 .
# $$
#
# Strided layers (pooling here) multiply the jump, so every layer after them widens the view
# faster. The table is computed for the small CNN built below; then the formula is checked by
# differentiating: the gradient of one output pixel with respect to the input is non-zero exactly
# on its receptive field (here with all weights 1 and average pooling, so that no gradient is zero
# by chance).

# %%
# (kind, kernel, stride) of each layer of the CNN below; ReLUs do not change the field.
cnn_layers = [
    ("conv", 3, 1),
    ("pool", 2, 2),
    ("conv", 3, 1),
    ("pool", 2, 2),
    ("conv", 3, 1),
]


def receptive_fields(layers):
    """[(kind, k, s)] -> [(receptive field, jump)] after each layer, in input pixels."""
    field, jump, out = 1, 1, []
    for _, k, s in layers:
        field, jump = field + (k - 1) * jump, jump * s
        out.append((field, jump))
    return out


fields = receptive_fields(cnn_layers)
print("layer   kernel  stride  receptive field  jump")
for (kind, k, s), (field, jump) in zip(cnn_layers, fields, strict=True):
    print(f"{kind:6} {k:7} {s:7} {field:10} x {field:<4} {jump:4}")


# %%
def field_from_gradient(layers, size=40):
    """Width of the input region that one central output pixel depends on, found by autograd."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = x
    for kind, k, s in layers:
        ones = torch.ones(1, 1, k, k, dtype=torch.float64)
        y = F.conv2d(y, ones, stride=s) if kind == "conv" else F.avg_pool2d(y, k, s)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.max() - rows.min() + 1)


measured = field_from_gradient(cnn_layers)
print(f"receptive field from the gradient: {measured} pixels; formula: {fields[-1][0]}")
assert measured == fields[-1][0]

# %% [markdown] tags=["shared"]
# A small CNN for 28 x 28 digits: three convolutions (3 x 3, padded so they keep the size), each
# followed by a ReLU, with 2 x 2 max pooling after the first two, then one dense layer over the
# flattened feature maps. Its last convolution sees the receptive field computed above.


# %%
class SmallCNN(nn.Module):
    def __init__(self, channels=(8, 16, 32), classes=10):
        super().__init__()
        c1, c2, c3 = channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c3 * 7 * 7, classes),
        )

    def forward(self, x):  # (N, 1, 28, 28)
        return self.layers(x)  # (N, classes) logits


torch.manual_seed(0)
cnn = SmallCNN()
h = torch.zeros(2, 1, 28, 28)  # (N, C, H, W)
print(f"{'input':26} {tuple(h.shape)}")
for layer in cnn.layers:
    h = layer(h)
    n_params = H.count_params(layer)
    print(f"{layer!s:26.26} {tuple(h.shape)!s:18} {n_params:6,} parameters")
print(f"total: {H.count_params(cnn):,} parameters")

# %% [markdown] tags=["shared"]
# The shapes follow the formula: padding 1 keeps 28 x 28, each pooling halves it (28, 14, 7),
# and the channels grow as the image shrinks. The convolutions together hold fewer parameters
# than the final dense layer, which connects every one of the last feature-map values to every
# class. Section 2.3 already trained a network on MNIST; training CNNs, with data augmentation
# and on colour images, comes with the vision chapters.
#
# ## 2.5 Recurrence: RNN and LSTM cells
#
# A recurrent network reads a sequence $x_1, \dots, x_T$ one step at a time and carries a hidden
# state $h_t$ from step to step: the same weights at every step, as a convolution uses the same
# weights at every position. The plain (Elman) **RNN cell** is
#
# $$
# h_t = \tanh\left(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}\right).
# $$

# %% [markdown]
# `nn.RNN` stores $W_{ih}$ as `weight_ih_l0` `(H, D)`, $W_{hh}$ as `weight_hh_l0` `(H, H)` and
# two biases (`_l0` is the first layer; a stacked RNN has `_l1`, ...). The hand-written cell runs
# in a Python loop over time and is asserted equal to `nn.RNN` with the same weights.


# %%
def rnn_cell(x_t, h, w_ih, w_hh, b_ih, b_hh):
    """x_t (B, D), h (B, H) -> next h (B, H)."""
    return torch.tanh(x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


torch.manual_seed(0)
batch, steps, d_in, d_hidden = 4, 7, 5, 6
x_seq = torch.randn(batch, steps, d_in, dtype=torch.float64)  # (B, T, D)
rnn = nn.RNN(d_in, d_hidden, batch_first=True, dtype=torch.float64)
h = torch.zeros(batch, d_hidden, dtype=torch.float64)  # (B, H)
outputs = []
for t in range(steps):
    h = rnn_cell(
        x_seq[:, t],
        h,
        rnn.weight_ih_l0,
        rnn.weight_hh_l0,
        rnn.bias_ih_l0,
        rnn.bias_hh_l0,
    )
    outputs.append(h)
ours = torch.stack(outputs, dim=1)  # (B, T, H)
theirs, h_last = rnn(x_seq)  # (B, T, H), (layers, B, H)
np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
np.testing.assert_allclose(h.detach().numpy(), h_last[0].detach().numpy(), rtol=1e-12)
print(f"hand-written RNN equals nn.RNN: outputs {tuple(ours.shape)}")

# %% [markdown] tags=["shared"]
# The **LSTM** {cite}`hochreiter1997long` adds a second state, the cell $c_t$, and four gates
# computed from $x_t$ and $h_{t-1}$: the input gate $i_t$, the forget gate $f_t$ (added to the
# LSTM later {cite}`gers2000learning`), a candidate $g_t$ and the output gate $o_t$. With $\sigma$
# the logistic sigmoid and $\odot$ the element-wise product,
#
# $$
# \begin{aligned}
# i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}), &
# f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}), \\
# g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}), &
# o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}), \\
# c_t &= f_t \odot c_{t-1} + i_t \odot g_t, &
# h_t &= o_t \odot \tanh(c_t).
# \end{aligned}
# $$
#
# The cell state is updated by a gated *sum*, not squashed through a matrix and a $\tanh$ at every
# step: that is what lets information, and gradient, travel across many steps when $f_t$ stays
# near 1. All four gates are computed as one matrix product of width $4H$ and then split.

# %% [markdown]
# PyTorch stacks the four gates in the order **i, f, g, o**: `weight_ih_l0` is `(4H, D)`,
# `weight_hh_l0` is `(4H, H)`, and there are two biases `bias_ih_l0`, `bias_hh_l0` of `(4H,)`
# (two where one would do, as in NVIDIA's cuDNN LSTM). `nn.LSTMCell` is one step with the same
# layout; `nn.LSTM` runs the whole loop over time inside one call, in C++ (and with cuDNN on an
# NVIDIA GPU), which is much faster than the Python loop below.


# %%
def lstm_cell(x_t, h, c, w_ih, w_hh, b_ih, b_hh):
    """x_t (B, D), h and c (B, H) -> next (h, c), each (B, H). PyTorch's layout."""
    gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H), in PyTorch's order
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_loop(x, lstm_weights, h, c):
    """x (B, T, D), h and c (B, H) -> outputs (B, T, H) and the last (h, c)."""
    outputs = []
    for t in range(x.shape[1]):
        h, c = lstm_cell(x[:, t], h, c, *lstm_weights)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


lstm = nn.LSTM(d_in, d_hidden, batch_first=True, dtype=torch.float64)
weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
print({name: tuple(p.shape) for name, p in lstm.named_parameters()})
h0 = torch.randn(batch, d_hidden, dtype=torch.float64)  # start from a non-zero state
c0 = torch.randn(batch, d_hidden, dtype=torch.float64)
ours, (h_ours, c_ours) = lstm_loop(x_seq, weights, h0, c0)
theirs, (h_n, c_n) = lstm(x_seq, (h0[None], c0[None]))  # states are (layers, B, H)
np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
np.testing.assert_allclose(c_ours.detach().numpy(), c_n[0].detach().numpy(), rtol=1e-12)

cell = nn.LSTMCell(d_in, d_hidden, dtype=torch.float64)
with torch.no_grad():
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
h_one, c_one = cell(x_seq[:, 0], (h0, c0))
np.testing.assert_allclose(
    h_one.detach().numpy(), ours[:, 0].detach().numpy(), rtol=1e-12
)
print(f"hand-written LSTM equals nn.LSTM and nn.LSTMCell: outputs {tuple(ours.shape)}")

# %% [markdown] tags=["shared"]
# ### Vanishing gradients, measured
#
# Training a recurrent network needs the gradient of a late loss with respect to early states.
# By the chain rule, $\partial L/\partial h_t$ is a product of $T - t$ step Jacobians. For the RNN
# each factor is $\operatorname{diag}(1 - h_{s}^2)\, W_{hh}$; when these shrink vectors, the
# product shrinks exponentially with the distance, so the network cannot learn from events far
# back {cite}`bengio1994learning`. In the LSTM the path through the cell state multiplies by the
# forget gates $f_s$ instead.
#
# Below, an RNN and an LSTM with the framework's default initialisation read the same random
# sequences, the loss is $\lVert h_T \rVert^2$ at the last step, and we measure
# $\lVert \partial L / \partial h_t \rVert$ for every earlier step $t$. A third curve is the same
# LSTM with its forget-gate bias raised by 1, a common initialisation
# {cite}`jozefowicz2015empirical`.

# %% [markdown]
# The hand-written cells run in a Python loop, so every $h_t$ is a tensor in autograd's graph,
# and `torch.autograd.grad(loss, states)` returns $\partial L / \partial h_t$ for all of them at
# once, each through every later step. The weights come from `nn.RNN` and `nn.LSTM` with their
# default initialisation.


# %%
def hidden_gradient_norms(kind, x, forget_bias=0.0):
    """||dL/dh_t|| for t = 1..T, L = mean over the batch of ||h_T||^2; x (B, T, D) -> (T,)."""
    torch.manual_seed(1)  # the same initial weights for each LSTM curve
    module = (nn.RNN if kind == "rnn" else nn.LSTM)(x.shape[-1], 64, batch_first=True)
    w = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    if kind == "lstm":
        hidden = w[1].shape[1]
        w[2] = w[2] + forget_bias * (torch.arange(4 * hidden) // hidden == 1)  # f block
    h = c = torch.zeros(x.shape[0], 64)
    states = []
    for t in range(x.shape[1]):
        if kind == "rnn":
            h = rnn_cell(x[:, t], h, *w)
        else:
            h, c = lstm_cell(x[:, t], h, c, *w)
        states.append(h)
    loss = states[-1].pow(2).sum(dim=-1).mean()
    grads = torch.autograd.grad(loss, states)  # dL/dh_t through every later step
    return torch.stack([g.norm() for g in grads]).numpy()


rnn_steps = H.sizes("sequences").rnn_steps
torch.manual_seed(0)
x_long = torch.randn(32, rnn_steps, 16)  # (B, T, D)
norms = {
    "RNN": hidden_gradient_norms("rnn", x_long),
    "LSTM": hidden_gradient_norms("lstm", x_long),
    "LSTM, forget bias +1": hidden_gradient_norms("lstm", x_long, forget_bias=1.0),
}
decay = {name: n[0] / n[-1] for name, n in norms.items()}
for name, ratio in decay.items():
    print(f"{name:22} ||dL/dh_1|| / ||dL/dh_T|| = {ratio:.1e}")
# What the text below says: both default cells lose orders of magnitude; the forget bias helps.
assert decay["RNN"] < 1e-2 and decay["LSTM"] < 1e-2
assert decay["LSTM, forget bias +1"] > 100 * decay["LSTM"]

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, n in norms.items():
    ax.semilogy(np.arange(1, rnn_steps + 1), n, label=name)
ax.set(
    xlabel="time step t",
    ylabel="gradient norm ||dL/dh_t||",
    title=f"Gradient of the last step's loss, PyTorch (T = {rnn_steps})",
)
ax.legend()
plt.show()

# %% [markdown] tags=["shared"]
# Read the plot from right to left: the further back the step, the smaller its gradient, and the
# RNN's falls by the factor printed above over the whole sequence. The LSTM is often said to
# solve this outright. Measured, at the framework's default initialisation (biases at or near 0,
# so $f_t \approx \sigma(0) = 0.5$) its gradient also falls exponentially with the distance; with
# the forget bias raised by 1 the first step keeps orders of magnitude more (the ratios above).
# What the LSTM provides is a path whose decay the network *controls* through $f_t$: training can
# push the forget gates towards 1 where a memory has to last. The two frameworks initialise
# recurrent cells differently (PyTorch draws every weight and bias uniformly from
# $\pm 1/\sqrt{H}$; Flax uses a LeCun-normal input kernel, an orthogonal recurrent kernel and
# zero biases), so the curves differ between the PyTorch and the JAX page, which of the two
# default cells decays faster included; the exponential decay and the effect of the forget bias
# appear on both.
#
# ## 2.6 Attention and a Transformer block
#
# A recurrent network passes information step by step. **Attention** lets every position look
# at every other position directly {cite}`vaswani2017attention`. Each position emits a query
# $q$, a key $k$ and a value $v$; the output at a position is an average of all values, weighted
# by how well its query matches each key. For $T$ queries and $S$ keys of width $d$, stacked into
# matrices $Q \in \mathbb{R}^{T \times d}$, $K \in \mathbb{R}^{S \times d}$,
# $V \in \mathbb{R}^{S \times d_v}$,
#
# $$
# \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}} + M\right) V ,
# $$
#
# with the softmax over the keys (the last axis). Dividing by $\sqrt{d}$ keeps the scores' spread
# independent of the width: with unit-variance entries, a dot product of width $d$ has variance
# $d$, and a softmax of large scores saturates to a one-hot vector with vanishing gradients. The
# mask $M$ is $0$ where attending is allowed and $-\infty$ where it is not, so those weights
# become exactly 0. Two masks are common: a **padding mask** hides the padding tokens that fill
# short sequences up to the batch's length, and a **causal mask** lets position $t$ see only
# positions $\le t$, as a model that generates text one token at a time must.

# %% [markdown]
# In the code a mask is boolean, `True` where attending is allowed: the convention of
# `F.scaled_dot_product_attention` (and of Flax).


# %%
import math


def attention(q, k, v, mask=None):
    """q (..., T, d), k (..., S, d), v (..., S, d_v), mask broadcastable to (..., T, S)
    with True = may attend -> (output (..., T, d_v), weights (..., T, S))."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
    return weights @ v, weights


torch.manual_seed(0)
batch, seq, width = 2, 5, 8
q, k, v = torch.randn(3, batch, seq, width, dtype=torch.float64)  # each (B, T, d)
lengths = torch.tensor([5, 3])  # the second sequence has 2 padding tokens
padding_mask = (torch.arange(seq) < lengths[:, None])[:, None, :]  # (B, 1, S)
causal_mask = torch.ones(seq, seq, dtype=torch.bool).tril()  # (T, S)
for name, mask in [
    ("none", None),
    ("padding", padding_mask),
    ("causal", causal_mask),
    ("padding and causal", padding_mask & causal_mask),
]:
    ours, weights = attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)
    print(f"mask {name!r:21}: equals F.scaled_dot_product_attention")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
panels = [("padding", padding_mask), ("causal", causal_mask)]
for ax, (name, mask) in zip(axes, panels, strict=True):
    _, weights = attention(q, k, v, mask)
    # the second sequence: 3 real tokens, 2 padding
    image = ax.imshow(weights[1].numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set(title=f"{name} mask", xlabel="key position", ylabel="query position")
fig.colorbar(image, ax=axes, label="attention weight")
plt.show()

# %% [markdown] tags=["shared"]
# The plots show the weights for the second sequence (3 real tokens, 2 padding). With the padding
# mask, the columns of the two padding keys are 0 for every query (the rows of the padding
# queries are computed too, and ignored later); with the causal mask, the weights above the
# diagonal are 0 and the first query can only attend to itself.
#
# **Multi-head attention** runs $h$ attentions side by side, each on its own learned projection
# of width $d_\text{head} = d_\text{model} / h$, so different heads can look for different
# things; their outputs are concatenated and projected back to $d_\text{model}$:
#
# $$
# \operatorname{head}_j = \operatorname{Attention}(X W^Q_j, X W^K_j, X W^V_j), \qquad
# \operatorname{MHA}(X) = [\operatorname{head}_1, \dots, \operatorname{head}_h]\, W^O .
# $$
#
# In code the $h$ projections are one matrix of width $d_\text{model}$, reshaped into heads.

# %% [markdown]
# `nn.MultiheadAttention` keeps $W^Q, W^K, W^V$ stacked in one `in_proj_weight` of shape
# `(3 d_model, d_model)` (applied as `x @ W.T`, like `nn.Linear`), with `in_proj_bias`, and $W^O$
# in `out_proj`. Its masks use the **opposite polarity**: in `attn_mask` and `key_padding_mask`,
# `True` means "may *not* attend" (padding). Passing a mask of one convention to the other is a
# silent bug, so the comparison below passes `~mask`.


# %%
def multi_head_attention(x, w_in, b_in, w_out, b_out, heads, mask=None):
    """x (B, T, d_model) -> (B, T, d_model), with nn.MultiheadAttention's weight layout:
    w_in (3 d_model, d_model), b_in (3 d_model,), w_out (d_model, d_model), b_out (d_model,).
    mask broadcastable to (B, heads, T, T), True = may attend."""
    batch, seq, d_model = x.shape
    q, k, v = (x @ w_in.T + b_in).chunk(3, dim=-1)  # each (B, T, d_model)

    def split_heads(t):  # (B, T, d_model) -> (B, heads, T, d_head)
        return t.reshape(batch, seq, heads, d_model // heads).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    out, _ = attention(q, k, v, mask)  # (B, heads, T, d_head)
    out = out.transpose(1, 2).reshape(batch, seq, d_model)  # heads side by side again
    return out @ w_out.T + b_out


d_model, heads = 16, 4
torch.manual_seed(0)
x = torch.randn(batch, seq, d_model, dtype=torch.float64)  # (B, T, d_model)
mha = nn.MultiheadAttention(d_model, heads, batch_first=True, dtype=torch.float64)
mha_weights = (
    mha.in_proj_weight,
    mha.in_proj_bias,
    mha.out_proj.weight,
    mha.out_proj.bias,
)
with torch.no_grad():
    # PyTorch initialises the biases to 0; make them non-zero to test them too.
    mha.in_proj_bias.normal_()
    mha.out_proj.bias.normal_()
    ours = multi_head_attention(x, *mha_weights, heads)
    theirs, _ = mha(x, x, x, need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    ours = multi_head_attention(x, *mha_weights, heads, mask=causal_mask)
    # nn.MultiheadAttention's masks: True = blocked.
    theirs, _ = mha(x, x, x, attn_mask=~causal_mask, need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    ours = multi_head_attention(x, *mha_weights, heads, mask=padding_mask[:, None])
    theirs, _ = mha(x, x, x, key_padding_mask=~padding_mask[:, 0], need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
print(
    f"hand-written multi-head attention equals nn.MultiheadAttention: {tuple(ours.shape)}"
)

# %% [markdown] tags=["shared"]
# ### Positional encoding
#
# Attention compares contents; nothing in it knows *where* a token is. Permute the input
# positions and the output rows are permuted the same way (attention is *permutation
# equivariant*), so "dog bites man" and "man bites dog" would give the same set of vectors. The
# Transformer {cite}`vaswani2017attention` therefore adds a **positional encoding** to each
# token's embedding before the first layer: sines and cosines of the position at geometrically
# spaced frequencies,
#
# $$
# \mathrm{PE}_{t, 2m} = \sin\!\left(t / 10000^{2m / d}\right), \qquad
# \mathrm{PE}_{t, 2m+1} = \cos\!\left(t / 10000^{2m / d}\right).
# $$
#
# ```{admonition} A common misconception: "positional encoding comes after self-attention"
# :class: warning
# Diagrams of the Transformer sometimes draw the positional encoding after the self-attention
# layer. It goes *before*: it is added to the token embeddings, and the sum is the input of the
# first attention layer {cite}`vaswani2017attention`. Added later, the first layer would already
# have mixed the tokens without knowing their order. The cell below shows it: without positional
# encoding, permuting the input tokens only permutes the outputs; with the encoding added to the
# embeddings first, the outputs change.
# ```


# %%
def sinusoidal_positions(length, d_model):
    """(length, d_model) float32 table: sin at even, cos at odd features (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


perm = torch.randperm(seq)
with torch.no_grad():
    positions = sinusoidal_positions(seq, d_model).double()  # (T, d_model)
    plain, _ = mha(x, x, x, need_weights=False)
    plain_permuted, _ = mha(x[:, perm], x[:, perm], x[:, perm], need_weights=False)
    np.testing.assert_allclose(
        plain_permuted.numpy(), plain[:, perm].numpy(), atol=1e-12
    )
    # The encoding is added BEFORE attention, to the inputs in their new order.
    xp, xp_permuted = x + positions, x[:, perm] + positions
    encoded, _ = mha(xp, xp, xp, need_weights=False)
    encoded_permuted, _ = mha(xp_permuted, xp_permuted, xp_permuted, need_weights=False)
gap = (encoded_permuted - encoded[:, perm]).abs().max().item()
print(f"permutation {perm.tolist()}: without positions, outputs permute exactly")
print(
    f"with positions added first, largest difference from the permuted outputs: {gap:.3f}"
)
assert gap > 1e-3

fig, ax = plt.subplots(figsize=(7, 2.8))
image = ax.imshow(sinusoidal_positions(64, 64).T.numpy(), aspect="auto", cmap="RdBu")
ax.set(title="Sinusoidal positional encoding", xlabel="position t", ylabel="feature")
fig.colorbar(image, ax=ax, label="value")
plt.show()

# %% [markdown] tags=["shared"]
# ### A pre-norm Transformer block, trained to sort
#
# A **Transformer block** alternates two sub-layers, each wrapped in a residual connection:
# multi-head self-attention (the tokens exchange information) and a two-layer MLP applied to
# every position on its own (each token processes what it gathered). The original Transformer
# normalised *after* each residual sum; most models today use the **pre-norm** arrangement,
# which trains more stably without a long learning-rate warm-up {cite}`xiong2020layer`:
#
# $$
# x \leftarrow x + \operatorname{MHA}(\operatorname{LN}(x)), \qquad
# x \leftarrow x + \operatorname{MLP}(\operatorname{LN}(x)).
# $$
#
# The task: **sort** a sequence of digits. The token at output position $t$ is the $t$-th
# smallest input, which can be anywhere in the sequence, so each output must compare the whole
# input, what attention does. `helpers.data.sequences.sort_batch` draws random sequences and
# their sorted versions as NumPy arrays, the same generator for both frameworks. The model embeds
# the tokens, adds the positional encoding, applies the blocks (no causal mask: the whole input is
# known) and predicts one token per position. A sequence counts as right only if **all** its
# positions are right. Training uses Adam {cite}`kingma2015adam` with its step size decayed to 0
# along a cosine over the run (large steps first, small ones to settle), on a fresh random batch
# at every step, so the model never sees the same batch twice.

# %%
from helpers.data.sequences import sort_batch

seq_sizes = H.sizes("sequences")
data_rng = np.random.default_rng(0)
example_in, example_out = sort_batch(data_rng, 2, seq_sizes.length, seq_sizes.vocab)
print(f"input:  {example_in[0]}\ntarget: {example_out[0]}\n(B, T) = {example_in.shape}")


# %%
class Block(nn.Module):
    """Pre-norm Transformer block: x + MHA(LN(x)), then x + MLP(LN(x)); (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x):
        a = self.norm1(x)
        x = x + self.attn(a, a, a, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Sorter(nn.Module):
    """Tokens (B, T) int64 -> logits (B, T, vocab)."""

    def __init__(self, vocab, length, d_model, heads, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        # A buffer: saved and moved with the model, but not trained.
        self.register_buffer("positions", sinusoidal_positions(length, d_model))
        self.blocks = nn.Sequential(*[Block(d_model, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.positions  # (B, T, d): positions BEFORE attention
        return self.head(self.norm(self.blocks(x)))  # (B, T, vocab)


device = H.default_device()
torch.manual_seed(0)
sorter = Sorter(
    seq_sizes.vocab,
    seq_sizes.length,
    seq_sizes.d_model,
    seq_sizes.heads,
    seq_sizes.layers,
).to(device)
print(f"{H.count_params(sorter):,} parameters on {device}")

# %%
import time

from tqdm.auto import tqdm

optimizer = torch.optim.Adam(sorter.parameters(), lr=seq_sizes.learning_rate)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=seq_sizes.steps)
losses = []
start = time.perf_counter()
for _ in tqdm(range(seq_sizes.steps), desc="sorting"):
    inputs, targets = (
        torch.from_numpy(a).to(device)
        for a in sort_batch(
            data_rng, seq_sizes.batch_size, seq_sizes.length, seq_sizes.vocab
        )
    )
    logits = sorter(inputs)  # (B, T, vocab)
    loss = F.cross_entropy(logits.reshape(-1, seq_sizes.vocab), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()  # the next step's size
    losses.append(loss.item())
train_seconds = time.perf_counter() - start
print(
    f"{seq_sizes.steps} steps of {seq_sizes.batch_size} sequences in {train_seconds:.1f} s"
)

# %%
test_in, test_out = sort_batch(
    np.random.default_rng(1), 4_096, seq_sizes.length, seq_sizes.vocab
)  # fresh sequences, from another seed than training
with torch.no_grad():
    predicted = sorter(torch.from_numpy(test_in).to(device)).argmax(-1).cpu().numpy()
token_accuracy = (predicted == test_out).mean()
sequence_accuracy = (predicted == test_out).all(axis=1).mean()
print(
    f"token accuracy {token_accuracy:.2%}; sequence accuracy {sequence_accuracy:.2%} "
    f"on {len(test_in):,} new sequences (chance per token: {1 / seq_sizes.vocab:.0%})"
)
print(
    "input:    ", test_in[0], "\npredicted:", predicted[0], "\ntarget:   ", test_out[0]
)
# Even the shortest (smoke) run must have learned something; the longer ones must sort.
assert token_accuracy > 2 / seq_sizes.vocab
if H.current_scale() != "smoke":
    assert sequence_accuracy >= 0.99, sequence_accuracy

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogy(losses, alpha=0.4, label="per step")
window = max(1, len(losses) // 50)
ax.semilogy(
    np.arange(window - 1, len(losses)),
    np.convolve(losses, np.ones(window) / window, "valid"),
    label=f"mean of {window} steps",
)
ax.set(
    xlabel="training step",
    ylabel="cross-entropy (nats per token)",
    title=f"Transformer sorting, PyTorch ({H.current_scale()} scale)",
)
ax.legend()
plt.show()

# %% [markdown] tags=["shared"]
# The sequence accuracy printed above is the fraction of fresh test sequences sorted without a
# single mistake. At `cpu` scale and above the cell asserts at least 99 %; the `smoke` run (CI)
# only checks that the model learned something. Without its attention layers the model could not
# do this at all: its MLPs see one position at a time, and the token each output position needs
# depends on every input token.
