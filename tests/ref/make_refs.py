#!/usr/bin/python3
"""Write the PyTorch reference files that tests/test_torch.c compares acn.h against.

Usage: /usr/bin/python3 tests/ref/make_refs.py OUTDIR
Needs Debian's python3-torch (1.13, CPU). Writes OUTDIR/ops.safetensors and
OUTDIR/optim.safetensors. Every case stores its inputs (in0, in1, ...), the
forward output (out), an upstream gradient (r) and the gradients that
backward of sum(out * r) gives each input that takes one (gin0, gin1, ...).
Integer arguments (labels, ids) are stored as F32, which holds them exactly.
The files are small and committed; `make test` also regenerates them into
build/ and checks acn.h against the fresh copies, so script and files cannot
drift apart.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from st import save  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)


class SplitMix64:
    """acn.h's generator (acn_rng_*), so that dropout masks agree exactly."""
    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.M

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
        return z ^ (z >> 31)

    def uniform(self):
        return (self.u64() >> 40) * (1.0 / 16777216.0)


T = {}


def case(name, fn, inputs, grads=None):
    """Run fn(*inputs), store inputs, output, r and input gradients under name."""
    grads = grads if grads is not None else [True] * len(inputs)
    leaves = []
    for x, g in zip(inputs, grads):
        x = x.detach().clone().float()
        x.requires_grad_(g)
        leaves.append(x)
    out = fn(*leaves)
    r = torch.randn(out.shape)
    (out * r).sum().backward()
    for i, x in enumerate(leaves):
        T["%s.in%d" % (name, i)] = x
        if g_ok(x):
            T["%s.gin%d" % (name, i)] = x.grad
    T[name + ".out"] = out
    T[name + ".r"] = r


def g_ok(x):
    return x.requires_grad and x.grad is not None


rn = torch.randn

# elementwise with broadcasting
case("add_bcast", lambda a, b: a + b, [rn(2, 3, 4), rn(4)])
case("add_bcast2", lambda a, b: a + b, [rn(3, 1, 5), rn(1, 4, 1)])
case("sub_bcast", lambda a, b: a - b, [rn(2, 3, 4), rn(3, 1)])
case("mul_bcast", lambda a, b: a * b, [rn(2, 3, 4), rn(2, 1, 4)])
case("mul_same", lambda a, b: a * b, [rn(7), rn(7)])
case("scale", lambda x: 0.37 * x, [rn(3, 5)])
case("add_n", lambda a, b, c: a + b + c, [rn(2, 3, 5), rn(2, 3, 5), rn(2, 3, 5)])
# reductions
case("sum_axis1", lambda x: x.sum(1), [rn(2, 3, 4)])
case("mean_last", lambda x: x.mean(-1), [rn(2, 3, 4)])
case("sum_all", lambda x: x.sum(), [rn(3, 5)])
case("mean_all", lambda x: x.mean(), [rn(2, 3, 4)])
# matrix products
case("matmul_2d", lambda a, b: a @ b, [rn(5, 7), rn(7, 3)])
case("matmul_tt", lambda a, b: a.t() @ b.t(), [rn(7, 5), rn(3, 7)])
case("matmul_nt", lambda a, b: a @ b.t(), [rn(5, 7), rn(3, 7)])
case("matmul_ta_batched", lambda a, b: a.transpose(-1, -2) @ b, [rn(2, 6, 5), rn(2, 6, 4)])
case("matmul_batched4", lambda a, b: a @ b, [rn(2, 3, 4, 5), rn(2, 3, 5, 6)])
case("matmul_shared", lambda a, b: a @ b, [rn(4, 5, 6), rn(6, 3)])
case("matmul_long", lambda a, b: a @ b, [rn(4, 600), rn(600, 5)])
case("linear", lambda x, w, b: F.linear(x, w, b), [rn(2, 3, 8), rn(5, 8), rn(5)])
case("linear_nobias", lambda x, w: F.linear(x, w), [rn(4, 8), rn(5, 8)])
case("linear_gelu", lambda x, w, b: F.gelu(F.linear(x, w, b)), [rn(3, 4, 8), rn(37, 8), rn(37)])
# activations
case("gelu", lambda x: F.gelu(x), [rn(4, 9) * 2])
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), [rn(4, 9) * 2])
case("relu", lambda x: F.relu(x), [rn(4, 9)])
case("tanh", lambda x: torch.tanh(x), [rn(4, 9)])
# softmax
case("softmax", lambda x: F.softmax(x, -1), [rn(2, 3, 7)])
mask = torch.zeros(2, 1, 1, 5)
mask[0, 0, 0, 4] = -1e9
mask[1, 0, 0, 0] = -2.5
case("softmax_mask", lambda x, m: F.softmax(x + m, -1), [rn(2, 2, 3, 5), mask], [True, False])
# cross-entropy
logits = rn(6, 5)
labels = torch.tensor([0, 3, -100, 4, 1, 3])
case("xent_smooth_ignore",
     lambda z, y: F.cross_entropy(z, y.long(), label_smoothing=0.1, ignore_index=-100),
     [logits, labels.float()], [True, False])
case("xent_plain", lambda z, y: F.cross_entropy(z, y.long()),
     [rn(2, 3, 4).reshape(6, 4), torch.tensor([0, 1, 2, 3, 2, 1]).float()], [True, False])
soft = F.softmax(rn(4, 5), -1)
case("xent_soft", lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1), [rn(4, 5), soft], [True, False])
# LayerNorm
case("layernorm", lambda x, g, b: F.layer_norm(x, (10,), g, b, 1e-5), [rn(3, 4, 10), rn(10), rn(10)])
case("layernorm_noaffine", lambda x: F.layer_norm(x, (6,), None, None, 1e-6), [rn(5, 6) * 3 + 1])
# shape ops
case("transpose", lambda x: x.transpose(1, 3).contiguous(), [rn(2, 3, 4, 5)])
case("reshape", lambda x: x.reshape(4, -1), [rn(2, 3, 4)])
case("concat", lambda a, b, c: torch.cat([a, b, c], 1), [rn(2, 3, 4), rn(2, 1, 4), rn(2, 2, 4)])
case("slice", lambda x: x[:, 1:4, :], [rn(2, 5, 3)])
# patches: the unfold of a Conv2d(k=4, s=4), and the convolution itself
case("patches", lambda x: F.unfold(x, 4, stride=4).transpose(1, 2), [rn(2, 3, 8, 12)])
case("patches_conv", lambda x, w, b: F.conv2d(x, w, b, stride=4).flatten(2).transpose(1, 2),
     [rn(2, 3, 8, 8), rn(6, 3, 4, 4), rn(6)])
# embedding
ids = torch.tensor([[1, 0, 9, 3], [3, 3, 7, 2]])
case("embedding", lambda t, i: F.embedding(i.long(), t), [rn(10, 6), ids.float()], [True, False])
# dropout with acn.h's generator: seed 1234, keep where uniform >= p
rng = SplitMix64(1234)
keep = torch.tensor([1.0 if rng.uniform() >= 0.3 else 0.0 for _ in range(4 * 7)]).reshape(4, 7)
case("dropout", lambda x: x * keep * (1.0 / (1.0 - 0.3)), [rn(4, 7)])


def mha(q, k, v, heads, m=None):
    B, Tq, D = q.shape
    Tk = k.shape[1]
    dh = D // heads
    qh = q.reshape(B, Tq, heads, dh).transpose(1, 2)
    kh = k.reshape(B, Tk, heads, dh).transpose(1, 2)
    vh = v.reshape(B, Tk, heads, dh).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(dh)
    if m is not None:
        s = s + m[:, None, None, :]
    return (F.softmax(s, -1) @ vh).transpose(1, 2).reshape(B, Tq, D)


pad = torch.zeros(2, 5)
pad[0, 3:] = -1e4
case("attention", lambda q, k, v, m: mha(q, k, v, 2, m), [rn(2, 5, 8), rn(2, 5, 8), rn(2, 5, 8), pad],
     [True, True, True, False])
case("attention_cross", lambda q, k, v: mha(q, k, v, 4), [rn(2, 3, 8), rn(2, 5, 8), rn(2, 5, 8)])

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
os.makedirs(out, exist_ok=True)
save(os.path.join(out, "ops.safetensors"), T, {"torch": torch.__version__})

# ---------------------------------------------------------------------------
# Optimizers: a 4-8-3 tanh MLP, cross-entropy, 10 AdamW steps with weight
# decay (off for b2), gradient clipping and the warmup-cosine schedule;
# then 6 SGD steps (momentum, Nesterov, weight decay).
O = {}
W1, b1, W2, b2 = rn(8, 4) * 0.5, rn(8) * 0.1, rn(3, 8) * 0.5, rn(3) * 0.1
X, Y = rn(6, 4), torch.tensor([0, 2, 1, 1, 0, 2])
for k, v in dict(W1=W1, b1=b1, W2=W2, b2=b2, x=X, y=Y.float()).items():
    O["init." + k] = v


def lr_at(step, base, warmup, total, lo):
    """acn_schedule_warmup_cosine, as documented in acn.h."""
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return lo
    p = (step - warmup) / (total - warmup)
    return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * p))


def train(opt_name):
    ps = [t.clone().requires_grad_(True) for t in (W1, b1, W2, b2)]
    if opt_name == "adamw":
        opt = torch.optim.AdamW([{"params": [ps[0], ps[2], ps[3]], "weight_decay": 0.1},
                                 {"params": [ps[1]], "weight_decay": 0.0}],
                                lr=1e-2, betas=(0.9, 0.99), eps=1e-8)
        steps = 10
    else:
        opt = torch.optim.SGD([{"params": [ps[0], ps[2], ps[3]], "weight_decay": 0.01},
                               {"params": [ps[1]], "weight_decay": 0.0}],
                              lr=0.1, momentum=0.9, nesterov=True)
        steps = 6
    losses, lrs, norms = [], [], []
    for s in range(steps):
        lr = lr_at(s, 1e-2, 3, 10, 1e-4) if opt_name == "adamw" else 0.1
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        h = torch.tanh(F.linear(X, ps[0], ps[1]))
        loss = F.cross_entropy(F.linear(h, ps[2], ps[3]), Y)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, 0.5)))
        opt.step()
        losses.append(float(loss))
        lrs.append(lr)
    for k, t in zip(("W1", "b1", "W2", "b2"), ps):
        O["%s.%s" % (opt_name, k)] = t
    O[opt_name + ".loss"] = torch.tensor(losses)
    O[opt_name + ".lr"] = torch.tensor(lrs)
    O[opt_name + ".norm"] = torch.tensor(norms)


train("adamw")
train("sgd")
save(os.path.join(out, "optim.safetensors"), O, {"torch": torch.__version__})
print("wrote %s/ops.safetensors (%d tensors), %s/optim.safetensors (%d tensors)" % (out, len(T), out, len(O)))
