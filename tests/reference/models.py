#!/usr/bin/python3
"""PyTorch reference modules for acn.h's models, and the files its tests compare against.

Usage: /usr/bin/python3 tests/reference/models.py OUTDIR [small|paper]

Each model is written from docs/models.md and docs/acn.md ("The paper's models") with the
parameter names (state_dict keys) that acn.h uses. For every model configuration it writes
  OUTDIR/NAME.weights.safetensors  the weights, by state_dict key;
  OUTDIR/NAME.ref.safetensors      the input batch and labels, and for each wiring (plain,
                                   residual, acn, acn-detach): the logits, the loss, the head's
                                   logits after every k = 0..L blocks (probes) and the gradient of
                                   the loss for every parameter; metadata: the parameter count
                                   (sum of p.numel()) and the configuration.
"small" writes the small configurations committed in tests/reference/; "paper" writes the paper's
CIFAR-10 Mixer (2,527,002 parameters), which `make test` generates at test time.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st import save  # noqa: E402

torch.set_num_threads(1)
WIRINGS = ["plain", "residual", "acn", "acn-detach"]


def wire(x0, blocks, head, wiring):
    """The four wirings of docs/models.md ("Wirings"); returns the head's output after 0..L blocks."""
    probes, x, y = [head(x0)], x0, x0
    for blk in blocks:
        x = blk(x.detach() if wiring == "acn-detach" else x, wiring == "residual")
        y = y + x if wiring in ("acn", "acn-detach") else x
        probes.append(head(y))
    return probes


def mha(q, k, v, heads, mask_add=None):
    """Multi-head scaled-dot-product attention; mask_add (B, Tk) is added to the scores."""
    B, Tq, D = q.shape
    Tk, dh = k.shape[1], D // heads
    q, k, v = (t.reshape(B, -1, heads, dh).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(dh)
    if mask_add is not None:
        s = s + mask_add[:, None, None, :]
    return (F.softmax(s, -1) @ v).transpose(1, 2).reshape(B, Tq, D)


# ---- deep MLP ---------------------------------------------------------------------------------
class MLPBlock(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.fc = nn.Linear(c["width"], c["width"], bias=c["bias"])
        if c["block_ln"]:
            s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])

    def forward(s, x, residual):
        h = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "none": lambda t: t}[s.c["act"]](s.fc(x))
        if s.c["block_ln"]:
            h = s.ln(h)
        return x + h if residual else h


class MLP(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.embed = nn.Linear(c["in"], c["width"], bias=c["bias"])
        s.blocks = nn.ModuleList([MLPBlock(c) for _ in range(c["depth"])])
        if c["head_ln"]:
            s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.clf = nn.Linear(c["width"], c["classes"], bias=c["bias"])

    def head(s, y):
        return s.clf(s.ln(y) if s.c["head_ln"] else y)

    def probes(s, x, wiring):
        return wire(s.embed(x), s.blocks, s.head, wiring)


# ---- MLP-Mixer (the authors' form, or the textbook form) --------------------------------------
class TokenMLP(nn.Module):
    def __init__(s, T, D, hidden, eps):
        super().__init__()
        s.ln = nn.LayerNorm(D, eps=eps)
        s.fc1 = nn.Linear(T, hidden)  # across tokens: the authors' 1x1 conv with tokens as channels
        s.fc2 = nn.Linear(hidden, T)

    def forward(s, x):  # (B, T, D)
        return s.fc2(F.gelu(s.fc1(s.ln(x).transpose(1, 2)))).transpose(1, 2)


class ChannelMLP(nn.Module):
    def __init__(s, D, hidden, eps):
        super().__init__()
        s.ln = nn.LayerNorm(D, eps=eps)
        s.fc1 = nn.Linear(D, hidden)
        s.fc2 = nn.Linear(hidden, D)

    def forward(s, x):
        return s.fc2(F.gelu(s.fc1(s.ln(x))))


class MixerBlock(nn.Module):
    def __init__(s, c, T):
        super().__init__()
        s.textbook = c["textbook"]
        s.tok = TokenMLP(T, c["width"], c["token_hidden"], c["ln_eps"])
        s.ch = ChannelMLP(c["width"], c["channel_hidden"], c["ln_eps"])
        if not s.textbook:
            s.linear = nn.Linear(c["width"], c["width"])
            s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])

    def forward(s, x, residual):
        if residual:
            y1 = x + s.tok(x)
            u = y1 + s.ch(y1)
        else:
            u = s.ch(s.tok(x))
        if s.textbook:
            return u
        return s.ln(F.relu(s.linear(u) + x))  # the authors' wrapper, in every wiring


class Mixer(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        T = (c["image"] // c["patch"]) ** 2 + (0 if c["textbook"] else 1)
        s.embed = nn.Conv2d(c["channels"], c["width"], c["patch"], stride=c["patch"])
        if not c["textbook"]:
            s.cls = nn.Parameter(torch.randn(1, 1, c["width"]))
        s.blocks = nn.ModuleList([MixerBlock(c, T) for _ in range(c["depth"])])
        s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.clf = nn.Linear(c["width"], c["classes"])

    def head(s, y):
        if s.c["textbook"]:
            return s.clf(s.ln(y).mean(1))
        return s.clf(s.ln(y)[:, 0])

    def probes(s, img, wiring):
        x = s.embed(img).flatten(2).transpose(1, 2)  # (B, N, D), patches row-major
        if not s.c["textbook"]:
            x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1)
        return wire(x, s.blocks, s.head, wiring)


# ---- ViT --------------------------------------------------------------------------------------
def posemb_sincos_2d(gh, gw, D):
    r, col = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64),
                            indexing="ij")
    q = D // 4
    w = 1.0 / (10000.0 ** (torch.arange(q, dtype=torch.float64) / (q - 1)))
    c = col.flatten()[:, None] * w[None, :]
    r = r.flatten()[:, None] * w[None, :]
    return torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], 1).float()


class ViTAttn(nn.Module):
    def __init__(s, D, heads):
        super().__init__()
        s.heads = heads
        s.qkv = nn.Linear(D, 3 * D)
        s.proj = nn.Linear(D, D)

    def forward(s, x):
        q, k, v = s.qkv(x).chunk(3, -1)
        return s.proj(mha(q, k, v, s.heads))


class Mlp(nn.Module):
    def __init__(s, D, hidden):
        super().__init__()
        s.fc1 = nn.Linear(D, hidden)
        s.fc2 = nn.Linear(hidden, D)

    def forward(s, x):
        return s.fc2(F.gelu(s.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.ln1 = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.attn = ViTAttn(c["width"], c["heads"])
        s.ln2 = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.mlp = Mlp(c["width"], c["mlp"])

    def forward(s, x, residual):
        h = s.attn(s.ln1(x))
        if residual:
            h = x + h
        o = s.mlp(s.ln2(h))
        return h + o if residual else o


class ViT(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        g = c["image"] // c["patch"]
        s.embed = nn.Conv2d(c["channels"], c["width"], c["patch"], stride=c["patch"])
        s.register_buffer("pos", posemb_sincos_2d(g, g, c["width"]), persistent=False)
        s.blocks = nn.ModuleList([ViTBlock(c) for _ in range(c["depth"])])
        s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.head = nn.Linear(c["width"], c["classes"])

    def head_fn(s, y):
        return s.head(s.ln(y).mean(1))

    def probes(s, img, wiring):
        return wire(s.embed(img).flatten(2).transpose(1, 2) + s.pos, s.blocks, s.head_fn, wiring)


# ---- BERT -------------------------------------------------------------------------------------
class BertAttn(nn.Module):
    def __init__(s, D, heads):
        super().__init__()
        s.heads = heads
        s.q, s.k, s.v, s.o = (nn.Linear(D, D) for _ in range(4))

    def forward(s, x, mask_add):
        return s.o(mha(s.q(x), s.k(x), s.v(x), s.heads, mask_add))


class BertBlock(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.attn = BertAttn(c["width"], c["heads"])
        s.ln_a = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.mlp = Mlp(c["width"], c["mlp"])
        s.ln_b = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.mask_add = None

    def forward(s, x, residual):  # post-LN; ACN and plain drop the two "+ input"
        a = s.attn(x, s.mask_add)
        a = s.ln_a(x + a if residual else a)
        h = s.mlp(a)
        return s.ln_b(a + h if residual else h)


class BertEmbed(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.tok = nn.Embedding(c["vocab"], c["width"])
        s.pos = nn.Embedding(c["max_pos"], c["width"])
        s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])


class BertMLM(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.dense = nn.Linear(c["width"], c["width"])
        s.ln = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        s.decoder = nn.Linear(c["width"], c["vocab"])  # untied from embed.tok


class Bert(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.embed = BertEmbed(c)
        s.blocks = nn.ModuleList([BertBlock(c) for _ in range(c["depth"])])
        s.mlm = BertMLM(c)
        s.pooler = nn.Linear(c["width"], c["width"])
        s.clf = nn.Linear(c["width"], c["classes"])

    def head_mlm(s, y):
        return s.mlm.decoder(s.mlm.ln(F.gelu(s.mlm.dense(y))))

    def head_cls(s, y):
        return s.clf(torch.tanh(s.pooler(y[:, 0])))

    def probes(s, tokens, mask, wiring, head):
        T = tokens.shape[1]
        mask_add = (1.0 - mask) * -10000.0
        for b in s.blocks:
            b.mask_add = mask_add
        x = s.embed.ln(s.embed.tok(tokens) + s.embed.pos(torch.arange(T)))
        return wire(x, s.blocks, s.head_mlm if head == "mlm" else s.head_cls, wiring)


# ---- the files --------------------------------------------------------------------------------
def randomize(model):
    """PyTorch's default init for Linear and Conv (so that no head starts at zero), LayerNorms
    away from 1 and 0, embeddings N(0, 0.5): every gradient carries information."""
    g = torch.Generator().manual_seed(1)
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            mod.reset_parameters()
        elif isinstance(mod, nn.LayerNorm):
            mod.weight.data = 1 + 0.2 * torch.randn(mod.weight.shape, generator=g)
            mod.bias.data = 0.2 * torch.randn(mod.bias.shape, generator=g)
        elif isinstance(mod, nn.Embedding):
            mod.weight.data = 0.5 * torch.randn(mod.weight.shape, generator=g)


def write(out, name, model, config, run):
    """run(model, wiring) -> (list of probe logits, loss); the last probe is the logits."""
    randomize(model)
    save(os.path.join(out, name + ".weights.safetensors"), dict(model.state_dict()))
    ref = {}
    for wiring in WIRINGS:
        model.zero_grad()
        probes, loss = run(model, wiring)
        loss.backward()
        ref[wiring + ".loss"] = loss.detach().reshape(1)
        for key, ps in probes.items():
            ref["%s.%s" % (wiring, key)] = ps[-1]
            for j, p in enumerate(ps):
                ref["%s.%s.probe.%d" % (wiring, key, j)] = p
        for pname, p in model.named_parameters():
            ref["%s.grad.%s" % (wiring, pname)] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    ref.update(run.inputs)
    numel = sum(p.numel() for p in model.parameters())
    save(os.path.join(out, name + ".ref.safetensors"), ref, {"numel": numel, "config": json.dumps(config)})
    print("%-16s %9d parameters" % (name, numel))


class Run:
    """A batch for an image classifier and its loss."""

    def __init__(s, B, C, H, classes, seed):
        g = torch.Generator().manual_seed(seed)
        s.x = torch.randn(B, C, H, H, generator=g)
        s.y = torch.randint(0, classes, (B,), generator=g)
        s.inputs = {"x": s.x, "labels": s.y.float()}

    def __call__(s, model, wiring):
        probes = model.probes(s.x, wiring)
        return {"logits": probes}, F.cross_entropy(probes[-1], s.y, label_smoothing=0.1)


class RunMLP(Run):
    def __init__(s, B, n_in, classes, seed):
        g = torch.Generator().manual_seed(seed)
        s.x = torch.randn(B, n_in, generator=g)
        s.y = torch.randint(0, classes, (B,), generator=g)
        s.inputs = {"x": s.x, "labels": s.y.float()}


class RunBert:
    """MLM loss (labels -100 where not predicted) plus the classification loss."""

    def __init__(s, B, T, vocab, classes, seed):
        g = torch.Generator().manual_seed(seed)
        s.tokens = torch.randint(0, vocab, (B, T), generator=g)
        s.mask = torch.ones(B, T)
        s.mask[1, T - 2:] = 0
        s.mask[2, T - 3:] = 0
        s.mlm = torch.randint(0, vocab, (B, T), generator=g)
        s.mlm[torch.rand(B, T, generator=g) > 0.4] = -100
        s.mlm[0, 0] = 5
        s.cls = torch.randint(0, classes, (B,), generator=g)
        s.inputs = {"tokens": s.tokens.float(), "mask": s.mask, "mlm_labels": s.mlm.float(),
                    "labels": s.cls.float()}

    def __call__(s, model, wiring):
        pm = model.probes(s.tokens, s.mask, wiring, "mlm")
        pc = model.probes(s.tokens, s.mask, wiring, "cls")
        loss = F.cross_entropy(pm[-1].reshape(-1, pm[-1].shape[-1]), s.mlm.reshape(-1), ignore_index=-100) + \
            F.cross_entropy(pc[-1], s.cls)
        return {"mlm": pm, "cls": pc}, loss


# The configurations; tests/test_models.c builds the same ones.
MLP_GELU = dict(**{"in": 10}, width=16, depth=4, classes=3, act="gelu", block_ln=True, head_ln=True,
                bias=True, ln_eps=1e-5)
MLP_RELU = dict(**{"in": 7}, width=12, depth=5, classes=4, act="relu", block_ln=False, head_ln=False,
                bias=True, ln_eps=1e-5)
MIXER = dict(image=8, channels=3, patch=4, width=16, depth=3, token_hidden=8, channel_hidden=32, classes=5,
             textbook=False, ln_eps=1e-5)
MIXER_TEXTBOOK = dict(MIXER, textbook=True)
VIT = dict(image=8, channels=3, patch=4, width=16, depth=3, heads=2, mlp=32, classes=5, ln_eps=1e-6)
BERT = dict(vocab=30, max_pos=12, width=16, depth=3, heads=2, mlp=32, classes=3, ln_eps=1e-12)
PAPER_MIXER = dict(image=32, channels=3, patch=4, width=128, depth=16, token_hidden=64, channel_hidden=512,
                   classes=10, textbook=False, ln_eps=1e-5)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    which = sys.argv[2] if len(sys.argv) > 2 else "small"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    if which == "paper":
        write(out, "paper_mixer", Mixer(PAPER_MIXER), PAPER_MIXER, Run(2, 3, 32, 10, 7))
        return
    write(out, "mlp_gelu", MLP(MLP_GELU), MLP_GELU, RunMLP(5, 10, 3, 1))
    write(out, "mlp_relu", MLP(MLP_RELU), MLP_RELU, RunMLP(6, 7, 4, 2))
    write(out, "mixer", Mixer(MIXER), MIXER, Run(3, 3, 8, 5, 3))
    write(out, "mixer_textbook", Mixer(MIXER_TEXTBOOK), MIXER_TEXTBOOK, Run(3, 3, 8, 5, 4))
    write(out, "vit", ViT(VIT), VIT, Run(3, 3, 8, 5, 5))
    write(out, "bert", Bert(BERT), BERT, RunBert(3, 7, 30, 3, 6))


if __name__ == "__main__":
    main()
