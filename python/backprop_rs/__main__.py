"""Command line: ``backprop-rs`` / ``python -m backprop_rs``.

``train`` (the main job) trains an MLP on the bundled handwritten digits by backpropagation,
fed in one of the four modes; ``eval`` reloads a checkpoint and reports its accuracy; ``demo``
is a ten-second sanity check; ``bench`` times the engine against NumPy (and PyTorch if installed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from .bench import cli as bench_cli  # argparse only: the bench's flags, not the bench

# Defaults per mode, chosen so each reaches its accuracy target on the digits in a few seconds
# on a 2-core machine (see README / the training issue's note for measured numbers).
MODE_DEFAULTS = {
    "minibatch": dict(epochs=30, lr=3e-3, batch_size=32),
    "batch": dict(epochs=300, lr=1e-2, batch_size=None),
    "stochastic": dict(epochs=4, lr=5e-4, batch_size=1),
    "online": dict(epochs=4, lr=5e-4, batch_size=1),
}
# LeNet-5 in minibatch mode: 30 epochs at lr 2e-3 gives 98.3-98.9% over seeds 0-2 (4 s here).
MODEL_DEFAULTS = {("lenet", "minibatch"): dict(epochs=30, lr=2e-3, batch_size=32)}


def _optimizer(name: str, params, lr: float):
    from . import optim

    name = name.lower()
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=1e-4)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr)
    raise SystemExit(f"unknown optimizer '{name}' (choose adam, adamw, sgd, rmsprop or adagrad)")


def _train(args: argparse.Namespace) -> int:
    import backprop_rs as bp

    from . import models
    from .train import accuracy, fit

    d = MODEL_DEFAULTS.get((args.model, args.mode), MODE_DEFAULTS[args.mode])
    epochs = args.epochs if args.epochs is not None else d["epochs"]
    lr = args.lr if args.lr is not None else d["lr"]
    batch_size = args.batch_size if args.batch_size is not None else (d["batch_size"] or 32)
    hidden = [int(h) for h in str(args.hidden).split(",") if h.strip()]
    rank, world = 0, 1
    if args.distributed:
        if args.mode == "online":
            raise SystemExit("--distributed splits a data set among the ranks; online mode reads one stream: use "
                             "--mode minibatch, batch or stochastic")
        import backprop_rs.distributed as dist

        dist.init_process_group(backend="mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
    lead = rank == 0  # the log, the progress bar and the checkpoint come from rank 0 only
    say = (lambda *a: None) if args.quiet or not lead else print

    bp.manual_seed(args.seed)
    data = bp.data.load_digits()
    x_train, y_train, x_test, y_test = (t.to(args.device) for t in data)
    if args.model == "lenet":
        config = {"model": "lenet", "classes": 10, "dataset": "digits"}
    else:
        config = {"model": "mlp", "in_features": 64, "hidden": hidden, "classes": 10, "dataset": "digits"}
    model = models.build(config).to(args.device)
    net = model
    if args.distributed:
        net = bp.nn.parallel.DistributedDataParallel(model)  # rank 0's initial weights on every rank
    opt = _optimizer(args.optimizer, model.parameters(), lr)
    n_params = sum(p.numel() for p in model.parameters())
    feed = {"batch": f"whole data set ({x_train.shape[0]} examples) per update", "stochastic": "one shuffled example per update",
            "minibatch": f"{batch_size} examples per update", "online": "one streamed example per update, no epochs"}[args.mode]
    arch = "LeNet-5 (8x8 digits upsampled to 16x16)" if args.model == "lenet" else f"MLP 64-{'-'.join(map(str, hidden))}-10"
    say(f"backprop_rs {bp.__version__}: {arch} ({n_params} parameters) on digits "
        f"[{x_train.shape[0]} train / {x_test.shape[0]} test], device {args.device}")
    say(f"mode {args.mode} ({feed}), optimizer {args.optimizer} lr={lr}" + ("" if args.mode == "online" else f", {epochs} epochs"))
    if args.distributed:
        per = {"batch": "its share of the data set", "stochastic": "1 example"}.get(args.mode, f"{batch_size} examples")
        say(f"distributed: {world} MPI processes, each {per} per update, gradients averaged by all-reduce")

    loss_fn = bp.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    if args.mode == "online":
        # the stream replays the (once-shuffled) training set `epochs` times, one example at a time
        order = bp.randperm(x_train.shape[0], device=args.device)
        source = bp.data.stream(x_train.index_select(0, order), y_train.index_select(0, order), passes=epochs)
        hist = fit(model, opt, loss_fn, source, mode="online", eval_data=(x_test, y_test) if args.plot else None,
                   progress=not args.quiet, report_every=x_train.shape[0])
    else:
        hist = fit(net, opt, loss_fn, bp.data.TensorDataset(x_train, y_train), mode=args.mode, epochs=epochs,
                   batch_size=batch_size, seed=args.seed, eval_data=(x_test, y_test) if args.plot else None,
                   progress=not args.quiet and args.mode != "batch" and lead, distributed=args.distributed)
    wall = time.perf_counter() - t0
    if args.distributed:
        _check_replicas(model, world)
        dist.destroy_process_group()
        if not lead:
            return 0
    test_acc = accuracy(model, x_test, y_test)
    train_acc = accuracy(model, x_train, y_train)

    out = args.out or f"digits-{args.model}.safetensors"
    config.update(mode=args.mode, optimizer=args.optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seed=args.seed)
    if args.distributed:
        config.update(world_size=world)
    bp.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "config": config,
             "metrics": {"test_acc": test_acc, "train_acc": train_acc, "seconds": wall, "updates": hist.updates}}, out)
    if args.plot:
        _plot(hist, args.plot, say)
    if args.quiet:
        print(f"test_acc={test_acc:.4f} time={wall:.2f}s checkpoint={out}")
    else:
        print(f"final train loss {hist.loss[-1]:.4f}, train accuracy {train_acc:.4f}")
        print(f"test accuracy {test_acc:.4f} ({int(round(test_acc * x_test.shape[0]))}/{x_test.shape[0]})")
        print(f"wall time {wall:.2f} s for {hist.updates} updates")
        print(f"checkpoint saved to {os.path.abspath(out)}")
    return 0


def _check_replicas(model, world: int) -> None:
    """Raises unless every rank ends with bit-identical parameters (what DDP promises): the
    accuracy rank 0 reports is then every rank's model's."""
    import hashlib

    import backprop_rs.distributed as dist

    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    digests = [None] * world
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) != 1:
        raise RuntimeError(f"the replicas diverged: parameter digests per rank {digests}")


def _plot(hist, path: str, say) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib, which is not installed (pip install matplotlib); skipping the plot", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = range(1, len(hist.loss) + 1)
    a.plot(xs, hist.loss)
    a.set_title("training loss")
    a.set_xlabel("epoch" if hist.mode != "online" else "chunk")
    b.plot(xs, hist.train_acc, label="train")
    if hist.test_acc:
        b.plot(xs, hist.test_acc, label="test")
    b.set_title("accuracy")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    say(f"curves saved to {os.path.abspath(path)}")


def _eval(args: argparse.Namespace) -> int:
    import backprop_rs as bp

    from . import models
    from .train import accuracy

    ck = bp.load(args.checkpoint)
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck:
        raise SystemExit(f"{args.checkpoint} is not a backprop-rs training checkpoint (expected 'model' and 'config' entries)")
    model = models.build(ck["config"])
    model.load_state_dict(ck["model"])
    model = model.to(args.device)
    data = bp.data.load_digits()
    acc = accuracy(model, data.x_test.to(args.device), data.y_test.to(args.device))
    print(f"test accuracy {acc:.4f} ({int(round(acc * data.x_test.shape[0]))}/{data.x_test.shape[0]}) from {args.checkpoint}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Fits a small MLP to a noisy sine with plain gradient descent: forward, loss, backward, step."""
    import backprop_rs as bp

    bp.manual_seed(args.seed)
    x = bp.linspace(-3.0, 3.0, 256).reshape(-1, 1)
    y = x.sin() + 0.05 * bp.randn(256, 1)
    w1 = bp.randn(1, 32).requires_grad_()
    b1 = bp.zeros(32, requires_grad=True)
    w2 = (bp.randn(32, 1) * (1 / 32**0.5)).requires_grad_()
    b2 = bp.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        pred = (x @ w1 + b1).tanh() @ w2 + b2
        loss = ((pred - y) ** 2).mean()
        loss.backward()
        with bp.no_grad():
            for p in params:
                p -= args.lr * p.grad
                p.grad = None
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:5d}  mse {loss.item():.5f}")
    print(f"done in {time.perf_counter() - t0:.2f} s; final mse {loss.item():.5f} (noise floor 0.0025)")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench.runner import run

    return run(args)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="backprop-rs", description="backprop_rs: train and evaluate networks by backpropagation")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a network on the bundled handwritten digits (the main job)")
    tr.add_argument("--model", choices=["mlp", "lenet"], default="mlp", help="mlp (default) or lenet (LeNet-5 convolutional network)")
    tr.add_argument("--mode", choices=["batch", "stochastic", "minibatch", "online"], default="minibatch",
                    help="how examples feed backprop: whole set, one shuffled example, k examples, or a stream (default: minibatch)")
    tr.add_argument("--batch-size", type=int, default=None, help="examples per update in minibatch mode (default 32)")
    tr.add_argument("--epochs", type=int, default=None, help="passes over the data (online: passes of the stream); default per mode")
    tr.add_argument("--lr", type=float, default=None, help="learning rate (default per mode)")
    tr.add_argument("--optimizer", default="adam", help="adam, adamw, sgd (momentum 0.9), rmsprop or adagrad (default adam)")
    tr.add_argument("--hidden", default="128", help="hidden layer widths, comma separated (default 128)")
    tr.add_argument("--seed", type=int, default=0, help="random seed: same seed, same numbers (default 0)")
    tr.add_argument("--device", default="cpu", help="cpu or gpu (default cpu)")
    tr.add_argument("--out", default=None, help="where to save the checkpoint (default digits-<model>.safetensors)")
    tr.add_argument("--plot", default=None, metavar="PNG", help="save loss/accuracy curves (needs matplotlib)")
    tr.add_argument("--quiet", action="store_true", help="print only the final line")
    tr.add_argument("--distributed", action="store_true",
                    help="data-parallel over MPI: run as `mpirun -np N backprop-rs train --distributed`; --batch-size "
                         "is per rank, rank 0 logs and saves the checkpoint (needs mpi4py)")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="reload a checkpoint written by train and report its test accuracy")
    ev.add_argument("checkpoint")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=_eval)

    demo = sub.add_parser("demo", help="fit a small MLP to a sine curve (a quick check that everything works)")
    demo.add_argument("--steps", type=int, default=2000)
    demo.add_argument("--lr", type=float, default=0.05)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    be = sub.add_parser("bench", help="time backprop_rs against NumPy (and PyTorch when installed); see BENCHMARKS.md",
                        description=bench_cli.DESCRIPTION)
    bench_cli.add_arguments(be)
    be.set_defaults(func=_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
