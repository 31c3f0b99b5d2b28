"""The second main job: tinyshakespeare, the character-level GPT (and LSTM), the trainer, the
checkpoint and the ``train --model gpt`` / ``generate`` commands, on CI-sized configurations."""

import contextlib
import hashlib
import io
import math

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import lm, models
from backprop_rs.__main__ import main
from backprop_rs.data.shakespeare import SHA256, decode, encode, load_text

TINY = dict(n_layer=2, n_head=2, n_embd=32, hidden_size=64, block_size=32, batch_size=16, warmup_iters=20,
            lr=3e-3, min_lr=3e-4, eval_interval=0, eval_iters=10, seed=0)


def test_bundled_text_is_tinyshakespeare():
    text = load_text()
    assert len(text) == 1_115_394
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == SHA256
    c = bp.data.load_shakespeare()
    assert c.vocab_size == 65 and c.chars[0] == "\n" and c.chars[1] == " "
    assert len(c.train) == int(len(text) * 0.9) and len(c.train) + len(c.val) == len(text)
    assert c.decode(c.train[:14]) == "First Citizen:"
    assert decode(encode(text[-200:], c.chars), c.chars) == text[-200:] == c.decode(c.val[-200:])
    with pytest.raises(ValueError, match="vocabulary"):
        encode("naïve", c.chars)


# The names nanoGPT's model.py gives (GPT(GPTConfig(n_layer=2, bias=False))), written out by hand
def _nanogpt_keys(n_layer):
    keys = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        keys += [p + "ln_1.weight", p + "attn.c_attn.weight", p + "attn.c_proj.weight", p + "ln_2.weight",
                 p + "mlp.c_fc.weight", p + "mlp.c_proj.weight"]
    return keys + ["transformer.ln_f.weight", "lm_head.weight"]


def test_gpt_layout_parameters_and_tied_head():
    m = models.GPT(65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    assert list(m.state_dict()) == _nanogpt_keys(4)
    assert m.lm_head.weight is m.transformer.wte.weight
    n = sum(p.numel() for p in m.parameters())  # the tied matrix counted once
    expected = 65 * 128 + 64 * 128 + 4 * (2 * 128 + 128 * 384 + 128 * 128 + 128 * 512 + 512 * 128) + 128
    assert n == expected
    # nanoGPT prints "number of parameters: 0.80M" for it (position embeddings excluded)
    assert round(m.num_parameters() / 1e6, 2) == 0.80
    std = m.transformer.h[0].mlp.c_proj.weight.detach().numpy().std()
    assert abs(std - 0.02 / math.sqrt(8)) < 0.1 * 0.02 / math.sqrt(8)


def test_gpt_is_causal_and_tied_gradients_add_up():
    bp.manual_seed(0)
    m = models.GPT(65, block_size=16, n_layer=2, n_head=2, n_embd=16)
    idx = bp.randint(0, 65, (2, 10))
    logits = m(idx)
    assert list(logits.shape) == [2, 10, 65]
    a = idx.numpy().copy()
    a[:, 6:] = (a[:, 6:] + 1) % 65  # (Tensor has no % yet)
    idx2 = bp.tensor(a)
    logits2 = m(idx2)
    np.testing.assert_allclose(logits2.detach().numpy()[:, :6], logits.detach().numpy()[:, :6], atol=1e-6)
    assert np.abs(logits2.detach().numpy()[:, 6:] - logits.detach().numpy()[:, 6:]).max() > 1e-4
    # the tied matrix gets the sum of the embedding's and the head's gradients
    _, loss = m(idx, idx)
    loss.backward()
    g = m.transformer.wte.weight.grad.numpy()
    unused = sorted(set(range(65)) - set(idx.reshape(-1).tolist()))
    assert np.abs(g[unused]).max() > 0  # only the head touches rows of unseen tokens
    with pytest.raises(ValueError, match="block size"):
        m(bp.randint(0, 65, (1, 17)))


def test_lr_schedule_is_nanogpt_get_lr():
    cfg = lm.LMConfig()
    assert lm.lr_at(0, cfg) == pytest.approx(1e-3 / 101)
    assert lm.lr_at(99, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert lm.lr_at(100, cfg) == pytest.approx(1e-3)
    mid = 100 + (2000 - 100) // 2
    assert lm.lr_at(mid, cfg) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4), rel=1e-3)
    assert lm.lr_at(2000, cfg) == pytest.approx(1e-4)
    assert lm.lr_at(2500, cfg) == 1e-4


def test_sampling_top_k_and_temperature():
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 3.0, 1.0, 2.5])
    assert {models.sample_next(logits, 1.0, 1, rng) for _ in range(20)} == {1}
    assert {models.sample_next(logits, 1.0, 2, rng) for _ in range(200)} == {1, 3}
    draws = [models.sample_next(logits, 0.05, None, rng) for _ in range(50)]
    assert draws.count(1) >= 49


@pytest.mark.parametrize("model,bound", [("gpt", 2.75), ("lstm", 2.9)])
def test_ci_sized_training_run_learns(model, bound):
    """A few hundred iterations of a tiny model: from ln(65) = 4.17 nats to below `bound` on the
    validation split (seeds 0-2 give 2.53-2.56 for the GPT, a bigram model gives ~2.5)."""
    cfg = lm.LMConfig(model=model, max_iters=300 if model == "gpt" else 200, **TINY)
    res = lm.train_lm(cfg, progress=False, log=lambda s: None)
    assert [h["iter"] for h in res.history] == [cfg.max_iters]
    assert res.val_loss < bound, res.val_loss
    assert res.train_loss < bound + 0.1
    assert res.tokens_per_s > 0 and res.seconds > 0


def test_train_and_generate_commands(tmp_path):
    ck = str(tmp_path / "tiny-gpt.safetensors")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["train", "--model", "gpt", "--iters", "40", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                   "--block-size", "16", "--batch-size", "4", "--eval-interval", "20", "--eval-iters", "2",
                   "--out", ck, "--quiet"])
    assert rc == 0
    line = buf.getvalue().strip().splitlines()[-1]
    assert line.startswith("val_loss=") and "tokens_per_s=" in line and ck in line
    model, cfg = lm.load_model(ck)
    assert cfg["model"] == "gpt" and len(cfg["vocab"]) == 65 and cfg["block_size"] == 16
    ckpt = bp.load(ck)
    assert [h["iter"] for h in ckpt["metrics"]["history"]] == [0, 20, 40]
    assert math.isfinite(ckpt["metrics"]["val_loss"])
    outs = []
    for _ in range(2):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["generate", ck, "--prompt", "ROMEO:", "--tokens", "50", "--temperature", "0.8",
                         "--top-k", "40", "--seed", "3"]) == 0
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]  # same seed, same text
    text = outs[0][:-1]  # print's newline
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 50
    assert set(text) <= set(cfg["vocab"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["eval", ck]) == 0
    loss = float(buf.getvalue().split()[2])
    assert loss == pytest.approx(lm.split_loss(model, bp.data.load_shakespeare().val, 16), abs=6e-5)
    assert 2.0 < loss < 4.3  # 40 tiny steps: learned a little from ln(65) = 4.17
    with pytest.raises(SystemExit, match="never saw"):
        main(["generate", ck, "--prompt", "ROMEO\u00fc"])
    # the reloaded model computes what the trained one did
    idx = bp.tensor([encode("ROMEO:", cfg["vocab"])])
    again, _ = lm.load_model(ck)
    np.testing.assert_array_equal(model(idx).detach().numpy(), again(idx).detach().numpy())


def test_lstm_checkpoint_and_generate(tmp_path):
    ck = str(tmp_path / "tiny-lstm.safetensors")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--model", "lstm", "--iters", "5", "--n-layer", "1", "--n-embd", "8", "--hidden-size",
                     "16", "--block-size", "8", "--batch-size", "2", "--eval-iters", "1", "--out", ck,
                     "--quiet"]) == 0
    model, cfg = lm.load_model(ck)
    assert isinstance(model.lstm, bp.nn.LSTM) and cfg["hidden_size"] == 16
    assert sorted(k for k in model.state_dict() if k.startswith("lstm.")) == sorted(
        ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"])
    text = lm.generate_text(model, cfg["vocab"], "KING:", 20, seed=1)
    assert text.startswith("KING:") and len(text) == 25
