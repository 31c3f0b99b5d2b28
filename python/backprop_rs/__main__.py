"""Command line: ``backprop-rs`` / ``python -m backprop_rs``.

``train`` (the main job) trains an MLP on the bundled handwritten digits by backpropagation,
fed in one of the four modes; ``train --model gpt`` (the second main job) trains a character-level
GPT on the bundled tinyshakespeare text and ``generate`` samples from its checkpoint; ``eval`` reloads a checkpoint and reports its accuracy; ``explain``
writes an HTML page showing backpropagation on one test digit (``--tiny``: on XOR); ``demo``
is a ten-second sanity check; ``bench`` times the engine against NumPy (and PyTorch if installed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from .bench import cli as bench_cli  # argparse only: the bench's flags, not the bench
from .viz import cli as viz_cli  # --monitor / --allocate-loss and the explain subcommand

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
    if args.model in ("gpt", "lstm"):
        if args.distributed:
            raise SystemExit("--distributed trains the digits models (--model mlp or lenet); the language models run "
                             "in one process")
        return _train_lm(args)
    import backprop_rs as bp

    from . import models
    from .train import accuracy, fit

    if args.seed is None:
        args.seed = 0
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
    viz = viz_cli.TrainingViz(args, model, opt, x_train, y_train)
    t0 = time.perf_counter()
    if args.mode == "online":
        # the stream replays the (once-shuffled) training set `epochs` times, one example at a time
        order = bp.randperm(x_train.shape[0], device=args.device)
        source = bp.data.stream(x_train.index_select(0, order), y_train.index_select(0, order), passes=epochs)
        hist = fit(model, opt, loss_fn, source, mode="online", eval_data=(x_test, y_test) if args.plot else None,
                   progress=not args.quiet, report_every=x_train.shape[0], **viz.fit_kwargs())
    else:
        hist = fit(net, opt, loss_fn, bp.data.TensorDataset(x_train, y_train), mode=args.mode, epochs=epochs,
                   batch_size=batch_size, seed=args.seed, eval_data=(x_test, y_test) if args.plot else None,
                   progress=not args.quiet and args.mode != "batch" and lead, distributed=args.distributed,
                   **viz.fit_kwargs())
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
    viz_extra = viz.finish(hist, say)
    bp.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "config": config,
             "metrics": {"test_acc": test_acc, "train_acc": train_acc, "seconds": wall, "updates": hist.updates}, **viz_extra}, out)
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


# The language models' flags (None: LMConfig's default, nanoGPT's shakespeare_char CPU run)
LM_FLAGS = {"iters": "max_iters", "block_size": "block_size", "n_layer": "n_layer", "n_head": "n_head",
            "n_embd": "n_embd", "hidden_size": "hidden_size", "dropout": "dropout", "eval_interval": "eval_interval",
            "eval_iters": "eval_iters", "warmup_iters": "warmup_iters", "min_lr": "min_lr",
            "weight_decay": "weight_decay", "grad_clip": "grad_clip", "batch_size": "batch_size", "lr": "lr",
            "seed": "seed", "device": "device"}
# The character LSTM's own defaults where nanoGPT's GPT ones do not fit it
LSTM_DEFAULTS = dict(n_layer=2, n_embd=128, hidden_size=256, lr=2e-3, min_lr=2e-4, weight_decay=0.0)


def _train_lm(args: argparse.Namespace) -> int:
    from . import lm

    overrides = {field: getattr(args, flag) for flag, field in LM_FLAGS.items() if getattr(args, flag, None) is not None}
    base = dict(LSTM_DEFAULTS) if args.model == "lstm" else {}
    base.update(overrides)
    cfg = lm.LMConfig(model=args.model, **base)
    say = (lambda *a: None) if args.quiet else print
    corpus_note = "tinyshakespeare [first 90% train / last 10% val, 65 characters]"
    probe = lm.build_model(cfg, 65)
    n_params = sum(p.numel() for p in probe.parameters())
    del probe
    if args.model == "gpt":
        arch = f"GPT {cfg.n_layer} layers x {cfg.n_head} heads x {cfg.n_embd} embd, context {cfg.block_size}"
    else:
        arch = f"char-LSTM {cfg.n_layer} layers, hidden {cfg.hidden_size}, embd {cfg.n_embd}, context {cfg.block_size}"
    say(f"{arch} ({n_params / 1e6:.2f}M parameters) on {corpus_note}, device {cfg.device}")
    say(f"{cfg.max_iters} iterations of batch {cfg.batch_size} x {cfg.block_size} tokens; AdamW lr {cfg.lr} "
        f"(warm-up {cfg.warmup_iters}, cosine to {cfg.min_lr}), betas ({cfg.beta1}, {cfg.beta2}), "
        f"weight decay {cfg.weight_decay}, grad clip {cfg.grad_clip}, dropout {cfg.dropout}")
    res = lm.train_lm(cfg, progress=not args.quiet, log=say)
    out = args.out or f"shakespeare-{args.model}.safetensors"
    lm.save_checkpoint(res, out)
    if args.quiet:
        print(f"val_loss={res.val_loss:.4f} train_loss={res.train_loss:.4f} time={res.seconds:.1f}s "
              f"tokens_per_s={res.tokens_per_s:.0f} checkpoint={out}")
    else:
        print(f"final train loss {res.train_loss:.4f}, validation loss {res.val_loss:.4f} "
              f"(mean of {cfg.eval_iters} random batches each)")
        print(f"wall time {res.seconds:.1f} s for {cfg.max_iters} iterations, {res.tokens_per_s:,.0f} training "
              f"tokens/s (without the loss estimates)")
        print(f"checkpoint saved to {os.path.abspath(out)}")
        print(f"sample it: backprop-rs generate {out} --prompt \"ROMEO:\" --tokens 300 --temperature 0.8 --top-k 40")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from . import lm

    model, config = lm.load_model(args.checkpoint, args.device)
    missing = sorted(set(args.prompt) - set(config["vocab"]))
    if missing:
        raise SystemExit(f"the prompt has characters the model never saw: {missing!r}")
    text = lm.generate_text(model, config["vocab"], args.prompt, args.tokens, args.temperature,
                            args.top_k if args.top_k and args.top_k > 0 else None, args.seed, args.device)
    print(text)
    return 0


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
    if isinstance(ck, dict) and isinstance(ck.get("config"), dict) and ck["config"].get("model") in ("gpt", "lstm"):
        from . import lm

        model, config = lm.load_model(args.checkpoint, args.device)
        corpus = bp.data.load_shakespeare()
        loss = lm.split_loss(model, corpus.val, int(config["block_size"]), device=args.device)
        print(f"validation loss {loss:.4f} (all {(len(corpus.val) - 1) // int(config['block_size'])} windows of "
              f"{config['block_size']} characters of the last 10%) from {args.checkpoint}")
        return 0
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
    tr.add_argument("--model", choices=["mlp", "lenet", "gpt", "lstm"], default="mlp",
                    help="mlp (default) or lenet (LeNet-5) on the digits; gpt (character-level GPT) or lstm "
                         "(character LSTM) on tinyshakespeare")
    tr.add_argument("--mode", choices=["batch", "stochastic", "minibatch", "online"], default="minibatch",
                    help="how examples feed backprop: whole set, one shuffled example, k examples, or a stream (default: minibatch)")
    tr.add_argument("--batch-size", type=int, default=None, help="examples per update in minibatch mode (default 32)")
    tr.add_argument("--epochs", type=int, default=None, help="passes over the data (online: passes of the stream); default per mode")
    tr.add_argument("--lr", type=float, default=None, help="learning rate (default per mode)")
    tr.add_argument("--optimizer", default="adam", help="adam, adamw, sgd (momentum 0.9), rmsprop or adagrad (default adam)")
    tr.add_argument("--hidden", default="128", help="hidden layer widths, comma separated (default 128)")
    tr.add_argument("--seed", type=int, default=None, help="random seed: same seed, same numbers (default 0; gpt/lstm 1337)")
    tr.add_argument("--device", default="cpu", help="cpu or gpu (default cpu)")
    tr.add_argument("--out", default=None, help="where to save the checkpoint (default digits-<model>.safetensors)")
    tr.add_argument("--plot", default=None, metavar="PNG", help="save loss/accuracy curves (needs matplotlib)")
    tr.add_argument("--quiet", action="store_true", help="print only the final line")
    tr.add_argument("--distributed", action="store_true",
                    help="data-parallel over MPI: run as `mpirun -np N backprop-rs train --distributed`; --batch-size "
                         "is per rank, rank 0 logs and saves the checkpoint (needs mpi4py)")
    lmg = tr.add_argument_group("language models (--model gpt|lstm; defaults: nanoGPT's shakespeare_char CPU run)")
    lmg.add_argument("--iters", type=int, default=None, help="optimisation steps (default 2000)")
    lmg.add_argument("--block-size", type=int, default=None, help="context length (default 64)")
    lmg.add_argument("--n-layer", type=int, default=None, help="transformer blocks / LSTM layers (default 4 / 2)")
    lmg.add_argument("--n-head", type=int, default=None, help="attention heads (default 4)")
    lmg.add_argument("--n-embd", type=int, default=None, help="embedding width (default 128)")
    lmg.add_argument("--hidden-size", type=int, default=None, help="LSTM hidden size (default 256)")
    lmg.add_argument("--dropout", type=float, default=None, help="dropout (default 0.0)")
    lmg.add_argument("--eval-interval", type=int, default=None, help="iterations between loss estimates (default 250)")
    lmg.add_argument("--eval-iters", type=int, default=None, help="batches per loss estimate (default 20)")
    lmg.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up iterations (default 100)")
    lmg.add_argument("--min-lr", type=float, default=None, help="learning rate at the end of the cosine (default 1e-4)")
    lmg.add_argument("--weight-decay", type=float, default=None, help="AdamW decay on matrices (default 0.1)")
    lmg.add_argument("--grad-clip", type=float, default=None, help="gradient norm clipping, 0 = off (default 1.0)")
    viz_cli.add_train_arguments(tr)
    tr.set_defaults(func=_train)

    gen = sub.add_parser("generate", help="sample text from a checkpoint of train --model gpt|lstm")
    gen.add_argument("checkpoint")
    gen.add_argument("--prompt", default="\n", help="text to start from (default a newline)")
    gen.add_argument("--tokens", type=int, default=300, help="characters to sample (default 300)")
    gen.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (default 0.8)")
    gen.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest characters; 0 = all (default 40)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(func=_generate)

    ev = sub.add_parser("eval", help="reload a checkpoint written by train and report its test accuracy "
                                     "(gpt/lstm: its loss on the whole validation split)")
    ev.add_argument("checkpoint")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=_eval)

    demo = sub.add_parser("demo", help="fit a small MLP to a sine curve (a quick check that everything works)")
    demo.add_argument("--steps", type=int, default=2000)
    demo.add_argument("--lr", type=float, default=0.05)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    viz_cli.add_explain_parser(sub)

    be = sub.add_parser("bench", help="time backprop_rs against NumPy (and PyTorch when installed); see BENCHMARKS.md",
                        description=bench_cli.DESCRIPTION)
    bench_cli.add_arguments(be)
    be.set_defaults(func=_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
