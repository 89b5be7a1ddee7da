#!/usr/bin/env python3
"""tools/peer_ddp.py — the PyTorch DDP (Gloo) peer of `mpirun -np N charrnn train`.

  peer_ddp.py --data TEXT [--procs 2] [--threads 1] [--cell lstm --layers 2
              --hidden 128 --embed 0 --seq 50 --batch 50] (--seconds S | --steps N)

The model, data split, window layout and optimizer are those of
../shared/bench/torch_charrnn.py (imported: CharRNN, load_text, make_streams),
trained data-parallel the way charrnn's ranks train: --batch is the global
batch, process r of N trains streams [r*B/N, (r+1)*B/N) of the one-process
layout (hidden state carried per stream), DistributedDataParallel with the
Gloo backend averages the gradients (each process's loss is the mean over
its B/N*T targets, so the average is the mean over all B*T), then clipping
and Adam on every process. A one-element all-reduce per step lets process 0
end a --seconds run on every process at the same step (charrnn exchanges
the same). Throughput: global chars (batch*seq per step) per second after
--warmup steps, on process 0. Prints one JSON line (as torch_charrnn.py)
with train_chars_per_s, steps and peak_rss_mb (process 0).

Runs with the peer python of tools/peer-setup (.venv-peer/bin/python3) or
Debian's /usr/bin/python3 with python3-torch.
"""
import argparse
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    ap = argparse.ArgumentParser(prog="tools/peer_ddp.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--data", required=True)
    ap.add_argument("--procs", type=int, default=2, help="DDP processes (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    ap.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=0)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--batch", type=int, default=50, help="global batch (a multiple of --procs)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=123)
    stop = ap.add_mutually_exclusive_group()
    stop.add_argument("--seconds", type=float)
    stop.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tag", default="")
    ap.add_argument("--peer", default=None, help="torch_charrnn.py (default ../shared/bench/ next to the repo)")
    a = ap.parse_args()
    if a.seconds is None and a.steps is None:
        a.seconds = 30.0
    if a.procs < 1 or a.batch % a.procs:
        ap.error(f"--batch {a.batch} must be a multiple of --procs {a.procs}")
    if a.peer is None:
        shared = os.environ.get("CRN_SHARED_CORPORA")
        base = os.path.join(shared, "..") if shared else os.path.join(HERE, "..", "..", "shared")
        a.peer = os.path.normpath(os.path.join(base, "bench", "torch_charrnn.py"))
    return a


def import_peer(a):
    """torch_charrnn.py parses sys.argv when imported: give it arguments it accepts."""
    import importlib.util
    saved = sys.argv
    sys.argv = [a.peer, "--data", a.data, "--threads", str(a.threads), "--blas-threads", str(a.threads)]
    try:
        spec = importlib.util.spec_from_file_location("torch_charrnn", a.peer)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.argv = saved
    return mod


def worker(rank, a, port):
    peer = import_peer(a)
    torch, nn, F = peer.torch, peer.nn, peer.F
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=a.procs)
    torch.manual_seed(a.seed)
    chars, train, _val = peer.load_text(a.data)
    V = len(chars)
    xs, ys, n_win = peer.make_streams(train, a.batch, a.seq)
    rows = a.batch // a.procs
    r0 = rank * rows
    xs, ys = xs[:, r0:r0 + rows].contiguous(), ys[:, r0:r0 + rows].contiguous()  # this process's streams
    model = peer.CharRNN(V, a.cell, a.layers, a.hidden, a.embed)
    ddp = DDP(model)  # broadcasts rank 0's parameters
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, foreach=True)
    params = list(model.parameters())

    model.train()
    state = model.init_state(rows)
    step, win = 0, 0
    stop = torch.zeros(1)
    t_start = time.perf_counter()
    t_warm = snap_warm = None
    while True:
        if a.steps is not None and step >= a.steps:
            break
        if a.seconds is not None:  # process 0's clock decides, for every process at the same step
            stop[0] = 1.0 if rank == 0 and time.perf_counter() - t_start >= a.seconds else 0.0
            dist.all_reduce(stop)
            if stop[0] > 0:
                break
        if win == n_win:
            win, state = 0, model.init_state(rows)
        x = xs[win * a.seq:(win + 1) * a.seq]
        y = ys[win * a.seq:(win + 1) * a.seq]
        state = peer.detach(state)
        logits, state = ddp(x, state)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the processes
        if a.clip > 0:
            nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        step, win = step + 1, win + 1
        if step == a.warmup:
            t_warm, snap_warm = time.perf_counter(), peer.cpu_snapshot()
    t_end = time.perf_counter()
    snap_end = peer.cpu_snapshot()
    # every process's own CPU ticks, so "foreign" excludes all of the peer's processes
    own = torch.tensor([float(snap_end[2] - (snap_warm or snap_end)[2])])
    dist.all_reduce(own)
    if rank == 0:
        chars_per_step = a.batch * a.seq
        if t_warm is not None and step > a.warmup:
            wall = t_end - t_warm
            tput = chars_per_step * (step - a.warmup) / wall
            ncpu = len(os.sched_getaffinity(0))
            busy = (snap_end[0] - snap_warm[0]) - own.item()
            foreign = round(max(busy, 0.0) / peer.CLK / (wall * ncpu), 4)
        else:
            tput, foreign = chars_per_step * step / (t_end - t_start), None
        res = {
            "bench": "peer_ddp", "tag": a.tag, "backend": "gloo", "procs": a.procs,
            "threads_per_proc": a.threads, "torch": torch.__version__,
            "config": {k: v for k, v in vars(a).items() if k not in ("tag", "peer")},
            "vocab": V, "steps": step, "train_s": round(t_end - t_start, 2),
            "train_chars_per_s": round(tput, 1),
            "peak_rss_mb": round(peer.resource.getrusage(peer.resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "foreign_cpu_frac": foreign,
        }
        print(json.dumps(res), flush=True)
    dist.destroy_process_group()


def main():
    a = parse_args()
    if not os.path.isfile(a.peer):
        sys.exit(f"tools/peer_ddp.py: {a.peer} not found (--peer)")
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import torch.multiprocessing as mp
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(a, port), nprocs=a.procs, join=True)


if __name__ == "__main__":
    main()
