#!/usr/bin/python3
"""make-golden.py — write the PyTorch golden fixtures for tests/test_golden.c.

Run with Debian's python and torch (no arguments needed):

    /usr/bin/python3 tools/make-golden.py [--out tests/golden]

For each case below it builds a tiny model out of the same PyTorch modules as
../shared/bench/torch_charrnn.py's CharRNN (nn.Embedding or a dense one-hot
input, a stacked nn.RNN(tanh|relu) / nn.LSTM / nn.GRU, nn.Linear to the
vocabulary, mean cross-entropy with ignored targets), with fixed pseudo-random
weights, inputs and a NON-ZERO carried-in state, runs forward and backward in
float64 and writes one fixture file per case.

Precision: every input of the computation (weights, carried-in state) is
generated as a float32 value, so the C float build loads exactly the same
numbers; the reference math is then done in float64, so the expected values
carry no float32 rounding of their own. The C test compares its float32
results with them (tolerance ~1e-5 relative, see tests/test_golden.c).

The weights are written in OUR layout (src/model.h), not PyTorch's:
    embed = Embedding.weight (V, E)         l<k>.w_x = weight_ih_l<k>.T (in, G*H)
    l<k>.w_h = weight_hh_l<k>.T (H, G*H)    l<k>.b_x = bias_ih_l<k>, l<k>.b_h = bias_hh_l<k>
    out_w = Linear.weight.T (H, V)          out_b = Linear.bias (V)
and so are the gradients. Gate order is PyTorch's (LSTM i,f,g,o; GRU r,z,n).
A pure-numpy reference forward that reads only OUR layout re-computes the
logits, loss and final state and must agree with torch to 1e-12, which checks
the transposition and gate order written to the fixtures.

Fixture format (text, UTF-8, one file per case, documented again in
tests/golden/README.md):

    # comment lines (starting with '#') and blank lines are ignored
    golden 1                      format magic and version, first non-comment line
    case <name>                   header: one "key value" per line, in any order
    cell rnn|lstm|gru
    act tanh|relu                 (tanh for lstm/gru)
    V <vocab>  E <embed, 0 = one-hot>  H <hidden>  L <layers>  T <steps>  B <streams>
    count <number of counted (non-ignored) targets>
    <kind> <name> <rows> <cols>   then <rows> lines of <cols> numbers each
    ...
    end

Blocks (kind name rows cols):
    ids x T B              input ids, time-major: row t, column b = x[t*B + b]
    ids y T B              target ids, -1 = ignored (CRN_IGNORE in C)
    param <tensor> r c     every model tensor, OUR layout, vectors as 1 x n
    h0 <layer> B H         carried-in hidden state of each layer
    c0 <layer> B H         carried-in cell state (LSTM only)
    hT <layer> B H         state after the last step
    cT <layer> B H         (LSTM only)
    logits - TB V          logits, row t*B + b
    loss - 1 1             mean cross-entropy over the counted targets, nats
    grad <tensor> r c      d loss / d tensor (no gradient into the carried-in state)

Numbers are Python repr() of float64 values (shortest round-trip form), so the
float32-generated inputs are exact and the output is byte-for-byte
reproducible (torch runs single-threaded).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100  # torch's ignore_index; written as -1 in the fixtures
F32_CHECK = False

# name, cell, act, layers, embed, hidden, vocab, steps, streams, seed
CASES = [
    ("rnn-tanh-1-onehot", "rnn", "tanh", 1, 0, 5, 7, 5, 3, 11),
    ("rnn-relu-2-embed", "rnn", "relu", 2, 3, 4, 7, 5, 3, 12),
    ("lstm-1-onehot", "lstm", "tanh", 1, 0, 4, 7, 5, 3, 13),
    ("lstm-2-embed", "lstm", "tanh", 2, 3, 5, 7, 5, 3, 14),
    ("gru-1-embed", "gru", "tanh", 1, 3, 6, 7, 5, 3, 15),
    ("gru-2-onehot", "gru", "tanh", 2, 0, 4, 7, 6, 2, 16),
]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class Rng:
    """splitmix64: a tiny generator fully defined here, so the fixtures do not
    depend on numpy's or torch's RNG streams."""

    def __init__(self, seed):
        self.s = (seed * 0x9E3779B97F4A7C15 + 0x1234567) & (2**64 - 1)

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & (2**64 - 1)
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        return z ^ (z >> 31)

    def uniform32(self, lo, hi, shape):
        """float32 values in [lo, hi), returned as float64 (exactly)."""
        n = int(np.prod(shape))
        u = np.array([(self.u64() >> 40) / float(1 << 24) for _ in range(n)])
        return (lo + (hi - lo) * u).astype(np.float32).astype(np.float64).reshape(shape)

    def below(self, n):
        return self.u64() % n


class CharRNN(nn.Module):
    """../shared/bench/torch_charrnn.py's CharRNN, plus the RNN nonlinearity."""

    def __init__(self, vocab, cell, act, layers, hidden, embed):
        super().__init__()
        self.vocab, self.cell, self.layers, self.hidden = vocab, cell, layers, hidden
        self.onehot = embed == 0
        self.embed = nn.Embedding(vocab, embed) if embed > 0 else nn.Identity()
        in_size = vocab if embed == 0 else embed
        if cell == "rnn":
            self.rnn = nn.RNN(in_size, hidden, layers, nonlinearity=act)
        elif cell == "lstm":
            self.rnn = nn.LSTM(in_size, hidden, layers)
        else:
            self.rnn = nn.GRU(in_size, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def encode(self, x):
        if self.onehot:
            e = torch.zeros(x.shape[0], x.shape[1], self.vocab, dtype=self.out.weight.dtype)
            return e.scatter_(2, x.unsqueeze(2), 1.0)
        return self.embed(x)

    def forward(self, x, state):
        y, state = self.rnn(self.encode(x), state)
        return self.out(y), state


def our_tensors(model, L, E):
    """[(our name, torch parameter, transpose?)] in src/model.h's order."""
    out = []
    if E > 0:
        out.append(("embed", model.embed.weight, False))
    for k in range(L):
        out.append((f"l{k}.w_x", getattr(model.rnn, f"weight_ih_l{k}"), True))
        out.append((f"l{k}.w_h", getattr(model.rnn, f"weight_hh_l{k}"), True))
        out.append((f"l{k}.b_x", getattr(model.rnn, f"bias_ih_l{k}"), False))
        out.append((f"l{k}.b_h", getattr(model.rnn, f"bias_hh_l{k}"), False))
    out.append(("out_w", model.out.weight, True))
    out.append(("out_b", model.out.bias, False))
    return out


def as_ours(t, transpose):
    a = t.detach().numpy()
    a = a.T if transpose else a
    return np.ascontiguousarray(a.reshape(1, -1) if a.ndim == 1 else a)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_forward(P, cell, act, L, E, H, x, h0, c0):
    """Reference forward reading only OUR layout (P: name -> 2-D array).
    Returns logits (T*B, V), final h, c lists, and the RNN pre-activations."""
    T, B = x.shape
    h = [h0[k].copy() for k in range(L)]
    c = [c0[k].copy() for k in range(L)] if cell == "lstm" else None
    pre, tops = [], []
    for t in range(T):
        inp = P["embed"][x[t]] if E > 0 else None
        for k in range(L):
            wx, wh = P[f"l{k}.w_x"], P[f"l{k}.w_h"]
            bx, bh = P[f"l{k}.b_x"][0], P[f"l{k}.b_h"][0]
            # one-hot input of layer 0: the row w_x[id], never a product
            gx = (wx[x[t]] if (k == 0 and E == 0) else inp @ wx) + bx  # (B, G*H)
            gh = h[k] @ wh + bh                                         # (B, G*H)
            if cell == "rnn":
                a = gx + gh
                pre.append(a)
                h[k] = np.tanh(a) if act == "tanh" else np.maximum(a, 0.0)
            elif cell == "lstm":
                g = gx + gh
                i, f, gg, o = (g[:, j * H:(j + 1) * H] for j in range(4))
                c[k] = sigmoid(f) * c[k] + sigmoid(i) * np.tanh(gg)
                h[k] = sigmoid(o) * np.tanh(c[k])
            else:
                r = sigmoid(gx[:, :H] + gh[:, :H])
                z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
                n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
                h[k] = (1.0 - z) * n + z * h[k]
            inp = h[k]
        tops.append(inp @ P["out_w"] + P["out_b"][0])
    return np.concatenate(tops, axis=0), h, c, pre


def numpy_loss(logits, y):
    yf = y.reshape(-1)
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    rows = [i for i in range(len(yf)) if yf[i] != IGNORE]
    return sum(lse[i] - logits[i, yf[i]] for i in rows) / len(rows), len(rows)


def fmt(v):
    return repr(float(v))


def block(lines, kind, name, a):
    a = np.asarray(a)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    lines.append(f"{kind} {name} {a.shape[0]} {a.shape[1]}")
    for row in a:
        if a.dtype.kind in "iu":
            lines.append(" ".join(str(int(v)) for v in row))
        else:
            lines.append(" ".join(fmt(v) for v in row))


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def make_case(name, cell, act, L, E, H, V, T, B, seed, attempt=0):
    rng = Rng(seed * 1000 + attempt)
    G = GATES[cell]
    torch.manual_seed(0)  # module construction only; every value is overwritten
    model = CharRNN(V, cell, act, L, H, E).double()
    tensors = our_tensors(model, L, E)
    with torch.no_grad():
        for tname, p, transpose in tensors:
            if tname == "embed":
                lo, hi = -1.0, 1.0
            elif tname == "out_w":
                lo, hi = -0.8, 0.8
            elif tname == "out_b":
                lo, hi = -0.3, 0.3
            else:
                lo, hi = -0.6, 0.6
            # generated in OUR layout, then stored in torch's
            shape = tuple(p.shape[::-1]) if transpose else tuple(p.shape)
            vals = rng.uniform32(lo, hi, shape)
            p.copy_(torch.from_numpy(vals.T.copy() if transpose else vals))
    x = np.array([[rng.below(V) for _ in range(B)] for _ in range(T)], dtype=np.int64)
    y = np.array([[rng.below(V) for _ in range(B)] for _ in range(T)], dtype=np.int64)
    # ignore about one target in five, at least one, never all of them
    for t in range(T):
        for b in range(B):
            if rng.below(5) == 0:
                y[t, b] = IGNORE
    if not (y == IGNORE).any():
        y[T // 2, B - 1] = IGNORE
    if (y == IGNORE).all():
        y[0, 0] = 0
    # a non-zero carried-in state (non-negative for ReLU, as a ReLU net's is)
    h0 = rng.uniform32(0.0 if act == "relu" else -0.9, 0.9, (L, B, H))
    c0 = rng.uniform32(-1.5, 1.5, (L, B, H)) if cell == "lstm" else None

    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    st = torch.from_numpy(h0)
    state = (st, torch.from_numpy(c0)) if cell == "lstm" else st
    logits, fin = model(xt, state)
    logits = logits.reshape(T * B, V)
    loss = F.cross_entropy(logits, yt.reshape(-1), ignore_index=IGNORE)
    loss.backward()
    hT = (fin[0] if cell == "lstm" else fin).detach().numpy()
    cT = fin[1].detach().numpy() if cell == "lstm" else None
    lg = logits.detach().numpy()

    P = {n: as_ours(p, tr) for n, p, tr in tensors}
    for n, p, tr in tensors:
        assert p.grad is not None, n
    # cross-check OUR layout against torch with an independent forward
    ref_lg, ref_h, ref_c, pre = numpy_forward(P, cell, act, L, E, H, x, h0, c0)
    ref_loss, count = numpy_loss(ref_lg, y)
    errs = [rel(ref_lg, lg), abs(ref_loss - loss.item()) / abs(loss.item())]
    errs += [rel(ref_h[k], hT[k]) for k in range(L)]
    if cell == "lstm":
        errs += [rel(ref_c[k], cT[k]) for k in range(L)]
    if max(errs) > 1e-12:
        sys.exit(f"{name}: numpy reference disagrees with torch: {errs}")
    if act == "relu":
        # A ReLU pre-activation too close to 0 could flip sign between the C
        # float32 run and this float64 one; regenerate until there is a margin,
        # and make sure both sides of the kink are exercised.
        a = np.concatenate([p.reshape(-1) for p in pre])
        if np.min(np.abs(a)) < 1e-3 or not (a > 0).any() or not (a < 0).any():
            return make_case(name, cell, act, L, E, H, V, T, B, seed, attempt + 1)

    lines = [
        "# charrnn golden fixture, generated by tools/make-golden.py; do not edit.",
        f"# torch {torch.__version__}, float64 reference; format: tests/golden/README.md",
        "golden 1",
        f"case {name}",
        f"cell {cell}",
        f"act {act}",
        f"V {V}", f"E {E}", f"H {H}", f"L {L}", f"T {T}", f"B {B}",
        f"count {count}",
    ]
    block(lines, "ids", "x", x)
    block(lines, "ids", "y", np.where(y == IGNORE, -1, y))
    for n, _, _ in tensors:
        block(lines, "param", n, P[n])
    for k in range(L):
        block(lines, "h0", str(k), h0[k])
        if cell == "lstm":
            block(lines, "c0", str(k), c0[k])
    block(lines, "logits", "-", lg)
    block(lines, "loss", "-", np.array([[loss.item()]]))
    for k in range(L):
        block(lines, "hT", str(k), hT[k])
        if cell == "lstm":
            block(lines, "cT", str(k), cT[k])
    for n, p, tr in tensors:
        g = p.grad.numpy()
        block(lines, "grad", n, np.ascontiguousarray(g.T if tr else g))
    lines.append("end")
    nparam = sum(P[n].size for n in P)
    f32 = f32_errors(model, cell, L, E, xt, yt, state, lg, loss.item(), hT, cT) if F32_CHECK else None
    return "\n".join(lines) + "\n", count, nparam, attempt, f32


def f32_errors(model, cell, L, E, xt, yt, state, lg, loss, hT, cT):
    """--f32-check: the same computation in torch float32 against the float64
    reference, with the C test's metric (max-abs error over the reference's
    max-norm): what a correct float32 implementation is expected to reach."""
    import copy
    m32 = copy.deepcopy(model).float()
    m32.zero_grad()
    st = tuple(s.float() for s in state) if cell == "lstm" else state.float()
    lg32, fin = m32(xt, st)
    V = lg.shape[1]
    l32 = F.cross_entropy(lg32.reshape(-1, V), yt.reshape(-1), ignore_index=IGNORE)
    l32.backward()
    e = {"loss": abs(l32.item() - loss) / abs(loss), "logits": rel(lg32.detach().double().numpy().reshape(-1, V), lg)}
    h32 = (fin[0] if cell == "lstm" else fin).detach().double().numpy()
    e["state"] = max([rel(h32[k], hT[k]) for k in range(L)] +
                     ([rel(fin[1].detach().double().numpy()[k], cT[k]) for k in range(L)] if cell == "lstm" else []))
    t64 = dict((n, p) for n, p, _ in our_tensors(model, L, E))
    e["grads"] = max(rel(p.grad.double().numpy(), t64[n].grad.numpy()) for n, p, _ in our_tensors(m32, L, E))
    return e



# ---- classifiers (tests/test_classify_golden.c) -----------------------------
# name, cell, layers, embed, hidden, vocab, classes, pool, bidir, steps, lengths, seed
CLF_CASES = [
    ("clf-lstm-bi-all-last", "lstm", 2, 3, 4, 7, 2, "last", "all", 5, [5, 2, 4], 21),
    ("clf-lstm-bi-last-mean", "lstm", 2, 3, 4, 7, 3, "mean", "last", 5, [3, 5, 1], 22),
    ("clf-gru-bi-all-max", "gru", 1, 4, 5, 6, 3, "max", "all", 4, [4, 1, 3, 2], 23),
    ("clf-lstm-fwd-last", "lstm", 1, 3, 4, 7, 2, "last", "none", 5, [2, 5, 3], 24),
]


class Classifier(nn.Module):
    """nn.Embedding -> nn.LSTM/GRU (bidirectional per layer) -> masked pooling -> nn.Linear.
    The padded steps are removed with pack_padded_sequence, so the backward
    direction reads each line's valid prefix reversed."""

    def __init__(self, cell, layers, embed, hidden, vocab, classes, bidir):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnns = nn.ModuleList()
        self.dirs = []
        cls = nn.LSTM if cell == "lstm" else nn.GRU
        inp = embed
        for l in range(layers):
            bi = bidir == "all" or (bidir == "last" and l == layers - 1)
            self.rnns.append(cls(inp, hidden, 1, bidirectional=bi))
            self.dirs.append(2 if bi else 1)
            inp = hidden * self.dirs[-1]
        self.K = 1 if classes == 2 else classes
        self.head = nn.Linear(inp, self.K)

    def forward(self, x, lengths, pool):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        h = self.embed(x)  # (T, B, E)
        for rnn in self.rnns:
            packed = pack_padded_sequence(h, lengths, enforce_sorted=False)
            out, hn = rnn(packed)
            h, _ = pad_packed_sequence(out, total_length=x.shape[0])
        if isinstance(hn, tuple):
            hn = hn[0]
        T, B, F_ = h.shape
        mask = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
        if pool == "last":
            f = torch.cat([hn[d] for d in range(hn.shape[0])], dim=1)  # h_n: fwd at len-1, bwd at 0
        elif pool == "mean":
            f = (h * mask).sum(0) / lengths.unsqueeze(1).double()
        else:
            f = h.masked_fill(~mask, float("-inf")).max(0).values
        return self.head(f)


def clf_tensors(model):
    """(our name, torch parameter, transpose) in classify.h's order."""
    out = [("embed", model.embed.weight, False)]
    for l, rnn in enumerate(model.rnns):
        for d in range(model.dirs[l]):
            sfx, tsfx = ("r", "_reverse") if d else ("", "")
            out += [(f"l{l}{sfx}.w_x", getattr(rnn, "weight_ih_l0" + tsfx), True),
                    (f"l{l}{sfx}.w_h", getattr(rnn, "weight_hh_l0" + tsfx), True),
                    (f"l{l}{sfx}.b_x", getattr(rnn, "bias_ih_l0" + tsfx), False),
                    (f"l{l}{sfx}.b_h", getattr(rnn, "bias_hh_l0" + tsfx), False)]
    out += [("head_w", model.head.weight, True), ("head_b", model.head.bias, False)]
    return out


def make_clf_case(name, cell, L, E, H, V, C, pool, bidir, T, lengths, seed):
    rng = Rng(seed)
    torch.manual_seed(0)
    model = Classifier(cell, L, E, H, V, C, bidir).double()
    with torch.no_grad():
        for _, p, _ in clf_tensors(model):
            p.copy_(torch.from_numpy(rng.uniform32(-0.8, 0.8, tuple(p.shape))))
    B = len(lengths)
    x = np.array([[rng.below(V) for _ in range(B)] for _ in range(T)], dtype=np.int64)  # padded steps random too
    y = np.array([rng.below(C) for _ in range(B)], dtype=np.int64)
    w = rng.uniform32(0.5, 1.5, (B,))
    lens = torch.tensor(lengths, dtype=torch.int64)
    z = model(torch.from_numpy(x), lens, pool)
    wt = torch.from_numpy(w)
    if C == 2:
        probs1 = torch.sigmoid(z[:, 0])
        probs = torch.stack([1 - probs1, probs1], dim=1)
        loss = (F.binary_cross_entropy_with_logits(z[:, 0], torch.from_numpy(y).double(), reduction="none") * wt).sum() / B
    else:
        probs = torch.softmax(z, dim=1)
        loss = (F.cross_entropy(z, torch.from_numpy(y), reduction="none") * wt).sum() / B
    loss.backward()
    lines = ["# charrnn classifier golden fixture, written by tools/make-golden.py (PyTorch %s)" % torch.__version__,
             "golden-clf 1", f"case {name}", f"cell {cell}", f"V {V}", f"E {E}", f"H {H}", f"L {L}", f"C {C}",
             f"pool {pool}", f"bidir {bidir}", f"T {T}", f"B {B}"]
    block(lines, "ids", "x", x)
    block(lines, "ids", "len", np.array([lengths], dtype=np.int64))
    block(lines, "ids", "y", np.array([y], dtype=np.int64))
    block(lines, "weights", "w", w)
    for n, p, tr in clf_tensors(model):
        block(lines, "param", n, as_ours(p.detach(), tr))
    block(lines, "probs", "-", probs.detach().numpy())
    block(lines, "loss", "-", np.array([[loss.item()]]))
    for n, p, tr in clf_tensors(model):
        block(lines, "grad", n, as_ours(p.grad, tr))
    lines.append("end")
    return "\n".join(lines) + "\n"

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"),
                    help="fixture directory (default: tests/golden)")
    ap.add_argument("--f32-check", action="store_true",
                    help="also run each case in torch float32 and print its errors (diagnostic)")
    args = ap.parse_args()
    global F32_CHECK
    F32_CHECK = args.f32_check
    torch.set_num_threads(1)  # fixed summation order: reproducible bytes
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    for name, cell, act, L, E, H, V, T, B, seed in CASES:
        text, count, nparam, attempt, f32 = make_case(name, cell, act, L, E, H, V, T, B, seed)
        path = os.path.join(args.out, name + ".txt")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"{path}: {cell}/{act} L={L} E={E} H={H} V={V} T={T} B={B} "
              f"params={nparam} counted={count}/{T * B} ({len(text)} bytes"
              f"{', seed attempt %d' % attempt if attempt else ''})")
        if f32:
            print("    torch float32 vs float64: " + "  ".join(f"{k} {v:.1e}" for k, v in f32.items()))
    for case in CLF_CASES:
        text = make_clf_case(*case)
        path = os.path.join(args.out, case[0] + ".txt")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"{path}: classifier {case[1]} L={case[2]} C={case[6]} pool={case[7]} bidir={case[8]} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
