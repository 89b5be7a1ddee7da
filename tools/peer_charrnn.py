"""tools/peer_charrnn.py — the PyTorch peer for tools/quality: train and
record validation bits/char against wall-clock time.

Built on the shared peer's definitions (../shared/bench/torch_charrnn.py:
CharRNN, load_text, make_streams, evaluate, detach — the same model, data
split, karpathy batch layout, Adam(foreach) and clipping), with what a
quality comparison needs on top:

  --seconds S / --steps N   the budget; with --seconds, evaluations count
                            against it (as for `charrnn train --time`)
  --eval-every-seconds S    validation every S seconds of the run (a curve)
  --eval-every-steps N      validation every N steps
  --schedule constant|cosine|linear
                            cosine/linear decay to 0 over --steps, or over
                            --seconds by re-estimating the steps left from the
                            measured time per step (as charrnn does)
  --unit codepoint|jamo     jamo: Hangul syllables split into conjoining jamo
                            (as charrnn --unit jamo); bits are reported per
                            source code point of the validation text

Prints one JSON line: final val_bpc, steps, seconds and the curve
[[seconds, step, val_bpc], ...]. Run it with the peer's python
(tools/peer-setup makes .venv-peer)."""
import argparse
import importlib.util
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--shared-peer", default=os.path.join(ROOT, "..", "shared", "bench", "torch_charrnn.py"))
    ap.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=0)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--schedule", choices=["constant", "cosine", "linear"], default="constant")
    ap.add_argument("--unit", choices=["codepoint", "jamo"], default="codepoint")
    stop = ap.add_mutually_exclusive_group(required=True)
    stop.add_argument("--seconds", type=float)
    stop.add_argument("--steps", type=int)
    ap.add_argument("--eval-every-seconds", type=float, default=0)
    ap.add_argument("--eval-every-steps", type=int, default=0)
    return ap.parse_args()


def load_shared(path):
    """Import the shared peer's definitions (it parses sys.argv on import)."""
    argv, sys.argv = sys.argv, [path, "--data", "-", "--steps", "0"]
    try:
        spec = importlib.util.spec_from_file_location("torch_charrnn", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
    return mod


def jamo_split(text):
    """Hangul syllables -> conjoining jamo (L V [T]), as charrnn's --unit jamo."""
    out = []
    for ch in text:
        c = ord(ch)
        if 0xAC00 <= c <= 0xD7A3:
            s = c - 0xAC00
            out.append(chr(0x1100 + s // 588))
            out.append(chr(0x1161 + (s % 588) // 28))
            if s % 28:
                out.append(chr(0x11A7 + s % 28))
        else:
            out.append(ch)
    return "".join(out)


def main():
    a = parse_args()
    P = load_shared(a.shared_peer)
    np, torch, nn, F = P.np, P.torch, P.nn, P.F
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    text = open(a.data, encoding="utf-8").read()
    n_src = len(text)
    n_train_src = int(n_src * 0.9)
    val_src_chars = n_src - n_train_src - 1       # targets of the validation split, in source characters
    if a.unit == "jamo":
        train_t, val_t = jamo_split(text[:n_train_src]), jamo_split(text[n_train_src:])
    else:
        train_t, val_t = text[:n_train_src], text[n_train_src:]
    chars = sorted(set(train_t + val_t))
    stoi = {c: i for i, c in enumerate(chars)}
    train = np.fromiter((stoi[c] for c in train_t), dtype=np.int64, count=len(train_t))
    val = np.fromiter((stoi[c] for c in val_t), dtype=np.int64, count=len(val_t))
    V = len(chars)
    # bits per validation token -> bits per source character of the validation text
    tok_per_char = (len(val) - 1) / max(val_src_chars, 1)
    xs, ys, n_win = P.make_streams(train, a.batch, a.seq)

    model = P.CharRNN(V, a.cell, a.layers, a.hidden, a.embed, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, foreach=True)
    params = list(model.parameters())

    def val_bpc():
        model.eval()
        b = P.evaluate(model, val, a.batch, 256) * tok_per_char
        model.train()
        return b

    def lr_at(step, horizon):
        if a.schedule == "constant" or not horizon:
            return a.lr
        p = min(1.0, step / horizon)
        return a.lr * (1 - p if a.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * p)))

    curve = []
    model.train()
    state = model.init_state(a.batch)
    step, win = 0, 0
    t0 = time.perf_counter()
    next_eval_t = a.eval_every_seconds or float("inf")
    horizon = a.steps if a.steps else 0
    while True:
        el = time.perf_counter() - t0
        if a.steps is not None and step >= a.steps:
            break
        if a.seconds is not None and el >= a.seconds:
            break
        if a.seconds is not None and step >= 4:
            horizon = step + int((a.seconds - el) / (el / step)) + 1
        if win == n_win:
            win, state = 0, model.init_state(a.batch)
        x = xs[win * a.seq:(win + 1) * a.seq]
        y = ys[win * a.seq:(win + 1) * a.seq]
        state = P.detach(state)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(params, a.clip)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, horizon)
        opt.step()
        step, win = step + 1, win + 1
        el = time.perf_counter() - t0
        if (a.eval_every_steps and step % a.eval_every_steps == 0) or el >= next_eval_t:
            curve.append([round(el, 2), step, round(val_bpc(), 4)])
            while next_eval_t <= time.perf_counter() - t0:
                next_eval_t += a.eval_every_seconds
    train_s = time.perf_counter() - t0
    final = val_bpc()
    curve.append([round(time.perf_counter() - t0, 2), step, round(final, 4)])
    print(json.dumps({"bench": "peer_charrnn", "torch": torch.__version__, "val_bpc": round(final, 4),
                      "steps": step, "train_s": round(train_s, 2), "vocab": V, "unit": a.unit,
                      "schedule": a.schedule, "seed": a.seed, "curve": curve}))


if __name__ == "__main__":
    main()
