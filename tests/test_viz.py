"""bp.viz: the graph (node/edge sets, gradient summaries vs .grad), the Monitor (vs hand
computations in NumPy), integrated gradients (completeness on an MLP and a LeNet; closed forms)
and loss change allocation (completeness on a short run; exactness on a quadratic)."""

import json
import math
import warnings

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import models, viz
from backprop_rs.train import fit
from conftest import tool_or_skip

F = bp.nn.functional


def np_(t):
    return np.array(t.detach().numpy(), dtype=np.float64)


def titles_and_edges(g):
    """The drawn graph as ({title}, {(child title, parent title)}) (the tests only ask about
    titles that occur once)."""
    by_id = {nid: n.title for nid, n in g.nodes.items()}
    return set(by_id.values()), {(by_id[c], by_id[p]) for c, p in g.edges}


@pytest.fixture(scope="module")
def digits():
    return bp.data.load_digits()


@pytest.fixture(scope="module")
def trained(digits):
    """An MLP and a LeNet after a short training run (plus their initial weights)."""
    out = {}
    for kind, epochs in (("mlp", 2), ("lenet", 1)):
        bp.manual_seed(0)
        m = models.mlp(64, [32], 10) if kind == "mlp" else models.LeNet5()
        init = {k: v.detach().clone() for k, v in m.state_dict().items()}
        opt = bp.optim.Adam(m.parameters(), lr=3e-3)
        fit(m, opt, F.cross_entropy, bp.data.TensorDataset(digits.x_train, digits.y_train), epochs=epochs, progress=False)
        out[kind] = (m, init)
    return out


# ---------------------------------------------------------------------------------------- graph


def test_graph_nodes_and_edges_of_a_known_expression():
    a = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = bp.tensor([0.5, -1.0, 2.0], requires_grad=True)
    c = bp.tensor([1.0, 1.0, 1.0])  # needs no grad: not drawn
    y = (a * b + a * c).exp()
    g = viz.graph(y, params={"a": a, "b": b})
    names = {n.op for n in g.nodes.values()}
    assert names == {"ExpBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad"}
    muls = g.find("MulBackward0")
    assert len(muls) == 2
    ids = {n.title: nid for nid, n in g.nodes.items() if n.op != "MulBackward0"}
    m_ab = next(n.id for n in muls if (ids["b"], n.id) in g.edges)
    m_ac = next(n.id for n in muls if n.id != m_ab)
    assert set(g.edges) == {(ids["a"], m_ab), (ids["b"], m_ab), (ids["a"], m_ac), (m_ab, ids["AddBackward0"]),
                            (m_ac, ids["AddBackward0"]), (ids["AddBackward0"], ids["ExpBackward0"])}
    assert g.nodes[ids["ExpBackward0"]].root and ids["ExpBackward0"] == "n0"
    assert g.nodes[ids["a"]].kind == "param" and g.nodes[ids["a"]].shape == (3,)
    src = g.source
    assert src.startswith("digraph backprop {") and src.rstrip().endswith("}")
    for c_, p_ in g.edges:
        assert f"  {c_} -> {p_};" in src
    assert src.count(" -> ") == len(g.edges) == 6
    assert 'label="a\\n(3,) float32 cpu' in src


def test_graph_follows_next_functions_exactly():
    """Every (node, next function) pair of a composite's primitive chain appears once."""
    lin = bp.nn.Linear(3, 2)
    x = bp.randn(4, 3, requires_grad=True)
    loss = F.mse_loss(lin(x), bp.zeros(4, 2))
    g = viz.graph(loss, params=dict(lin.named_parameters()))
    expected, stack, seen = set(), [loss.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        for child, _ in fn.next_functions:
            if child is not None:
                expected.add((child, fn))
                stack.append(child)
    assert len(g.nodes) == len(seen) and len(g.edges) == len(expected)
    leaf_titles = {n.title for n in g.nodes.values() if n.kind != "op"}
    assert leaf_titles == {"weight", "bias", "leaf"}  # x requires grad but is not a parameter


def test_gradient_summaries_equal_the_real_grads():
    bp.manual_seed(1)
    model = models.mlp(5, [7], 3)
    x, y = bp.randn(6, 5), bp.tensor([0, 1, 2, 0, 1, 2])
    out = model(x)
    loss = F.cross_entropy(out, y)
    params = dict(model.named_parameters())
    g = viz.graph(loss, params=params)
    assert all(n.grad is None for n in g.nodes.values())
    loss.backward()
    for name, p in params.items():
        (node,) = g.find(name)
        ref = np_(p.grad)
        assert node.grad.shape == tuple(p.shape)
        assert node.grad.norm == pytest.approx(np.linalg.norm(ref), rel=1e-6)
        assert node.grad.min == pytest.approx(ref.min(), rel=1e-6, abs=1e-9)
        assert node.grad.max == pytest.approx(ref.max(), rel=1e-6, abs=1e-9)
        assert node.grad.finite
    # the logits' node: dL/dlogits = (softmax - onehot) / N, by hand in NumPy
    z = np_(out)
    p_ = np.exp(z - z.max(1, keepdims=True))
    p_ /= p_.sum(1, keepdims=True)
    ref = (p_ - np.eye(3)[[0, 1, 2, 0, 1, 2]]) / 6
    logits_node = g.nodes[[c for c, par in g.edges if g.nodes[par].op == "LogSoftmaxBackward0"][0]]
    assert logits_node.op == "AddBackward0" and logits_node.shape == (6, 3)
    assert logits_node.grad.norm == pytest.approx(np.linalg.norm(ref), rel=1e-5)
    assert f"grad |.|={logits_node.grad.norm:.3g}" in g.source
    g.close()


def test_leaf_summaries_ignore_backward_passes_of_other_graphs():
    """A leaf's AccumulateGrad node is shared between graphs; only this graph's passes count."""
    w = bp.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x = bp.tensor([0.5, 0.5, 0.5], requires_grad=True)
    y = (w * x).sum()
    g = viz.graph(y, params={"w": w})
    y.backward(retain_graph=True)
    assert g.find("w")[0].grad.norm == pytest.approx(np.linalg.norm([0.5] * 3))
    (w * 10.0).sum().backward()  # another graph through the same leaf
    assert g.find("w")[0].grad.norm == pytest.approx(np.linalg.norm([0.5] * 3))
    assert g.find("leaf")[0].grad.max == pytest.approx(3.0)
    y2 = (w * bp.tensor([4.0, 4.0, 4.0])).sum()
    bp.autograd.grad(y2, [w])  # a pass of a different graph, through autograd.grad
    assert g.find("w")[0].grad.max == pytest.approx(0.5)
    y.backward()  # this graph again
    assert g.find("w")[0].grad.max == pytest.approx(0.5) and g.find("leaf")[0].grad.min == pytest.approx(-2.0)


def test_nan_and_inf_gradients_are_flagged_red():
    a = bp.tensor([-1.0, 4.0], requires_grad=True)
    y = a.sqrt().sum()  # sqrt(-1) = NaN forward, NaN gradient
    g = viz.graph(y, params={"a": a})
    y.backward()
    (node,) = g.find("a")
    assert node.grad.nan == 1 and not node.grad.finite
    line = next(s for s in g.source.splitlines() if s.strip().startswith(node.id + " "))
    assert "color=red" in line and "fontcolor=red" in line and "NaN 1 inf 0" in line
    b = bp.tensor([0.0, 1.0], requires_grad=True)
    z = (b.log() * 0 + b).sum()  # log(0) = -inf; its gradient 1/0 = inf, times 0 -> NaN
    g2 = viz.graph(z, params={"b": b})
    z.backward()
    assert not g2.find("b")[0].grad.finite
    ok = bp.tensor([1.0], requires_grad=True)
    g3 = viz.graph((ok * 2).sum(), params={"ok": ok})
    assert "red" not in g3.source


def test_graph_after_backward_needs_retain_graph():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        viz.graph(y)
    y2 = (a * a).sum()
    y2.backward(retain_graph=True)
    assert len(viz.graph(y2).nodes) >= 3
    with pytest.raises(ValueError, match="no grad_fn"):
        viz.graph(bp.ones(2))


def test_render_svg_and_a_clear_message_without_graphviz(tmp_path, monkeypatch):
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    g = viz.graph((a * 3).sum(), params={"a": a})
    assert g.save(str(tmp_path / "g.dot")) and (tmp_path / "g.dot").read_text() == g.source
    tool_or_skip("Graphviz (apt-get install graphviz)", viz.dot_available())
    p = g.render(str(tmp_path / "g.svg"))
    assert "<svg" in open(p).read() and "MulBackward0" in open(p).read()
    assert "<svg" in g._repr_svg_()
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz"):
        g.render(str(tmp_path / "x.png"))
    assert g._repr_svg_() is None and "Graph" in repr(g)


def test_collapse_by_module_with_a_trace_and_from_parameter_names():
    bp.manual_seed(2)
    model = models.mlp(6, [5], 3)
    x, y = bp.randn(4, 6), bp.tensor([0, 1, 2, 1])
    with viz.trace(model) as tr:
        out = model(x)
    loss = F.cross_entropy(out, y)
    params = dict(model.named_parameters())
    g = viz.graph(loss, params=params, collapse="module", trace=tr)
    h = viz.graph(loss, params=params, collapse="module")
    full = viz.graph(loss, params=params)
    titles, edges = titles_and_edges(g)
    assert {"0: Linear", "1: ReLU", "2: Linear"} <= titles
    assert ("0: Linear", "1: ReLU") in edges and ("1: ReLU", "2: Linear") in edges
    assert ("2: Linear", "LogSoftmaxBackward0") in edges
    assert not any(n.kind == "param" for n in g.nodes.values())  # folded into their modules
    assert len(g.nodes) < len(full.nodes)
    t2, e2 = titles_and_edges(h)
    assert {"module 0", "module 2", "ReluBackward0"} <= t2
    assert ("module 0", "ReluBackward0") in e2 and ("ReluBackward0", "module 2") in e2
    grads = {}
    out.register_hook(lambda gr: grads.__setitem__("out", np_(gr)))
    loss.backward()
    (m2,) = g.find("2: Linear")
    assert m2.grad.norm == pytest.approx(np.linalg.norm(grads["out"]), rel=1e-6)
    assert "weight (3, 5)" in g.source and "grad out" in g.source


def test_collapse_keeps_a_lenet_readable(digits):
    bp.manual_seed(0)
    net = models.LeNet5()
    with viz.trace(net) as tr:
        loss = F.cross_entropy(net(digits.x_train[:2]), digits.y_train[:2])
    full = viz.graph(loss, params=dict(net.named_parameters()))
    g = viz.graph(loss, params=dict(net.named_parameters()), collapse="module", trace=tr)
    titles = {n.title for n in g.nodes.values()}
    for name in ("features.1: Conv2d", "features.3: MaxPool2d", "features.4: Conv2d", "classifier.0: Flatten", "classifier.5: Linear"):
        assert name in titles
    assert len(g.nodes) <= 22 < len(full.nodes)
    assert all(n.shape is not None for n in g.nodes.values() if n.kind == "module")


class Block(bp.nn.Module):
    """A pre-norm transformer block (one head): its own ops (attention, residuals) sit between
    its layers, so collapsing it into one node would draw cycles."""

    def __init__(self, d=8, h=16):
        super().__init__()
        self.ln1, self.q, self.k, self.v = bp.nn.LayerNorm(d), bp.nn.Linear(d, d), bp.nn.Linear(d, d), bp.nn.Linear(d, d)
        self.o, self.ln2, self.fc1, self.act, self.fc2 = (bp.nn.Linear(d, d), bp.nn.LayerNorm(d), bp.nn.Linear(d, h),
                                                          bp.nn.GELU(), bp.nn.Linear(h, d))

    def forward(self, x):
        a = self.ln1(x)
        att = (self.q(a) @ self.k(a).transpose(-1, -2) / 8 ** 0.5).softmax(-1)
        x = x + self.o(att @ self.v(a))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def _is_dag(nodes, edges):
    indeg = {n: 0 for n in nodes}
    for _, p in edges:
        indeg[p] += 1
    ready = [n for n, d in indeg.items() if d == 0]
    seen = 0
    kids = {}
    for c, p in edges:
        kids.setdefault(c, []).append(p)
    while ready:
        n = ready.pop()
        seen += 1
        for p in kids.get(n, []):
            indeg[p] -= 1
            if indeg[p] == 0:
                ready.append(p)
    return seen == len(nodes)


def test_collapse_keeps_transformer_blocks_readable_and_acyclic():
    bp.manual_seed(0)
    net = bp.nn.Sequential(Block(), Block())
    with viz.trace(net) as tr:
        loss = net(bp.randn(2, 5, 8)).pow(2).mean()
    params = dict(net.named_parameters())
    full = viz.graph(loss, params=params)
    g = viz.graph(loss, params=params, collapse="module", trace=tr)
    assert _is_dag(full.nodes, full.edges) and _is_dag(g.nodes, g.edges)
    # the full graph (two blocks of ~60 op nodes: layer norm is one primitive) is 3x the collapsed
    assert len(g.nodes) <= 40 < 3 * 40 <= len(full.nodes)
    assert sorted(lab for lab, _ in g.clusters.values()) == ["0: Block", "1: Block"]
    box = {lab: cid for cid, (lab, _) in g.clusters.items()}
    for b in ("0", "1"):
        for layer in ("ln1", "q", "k", "v", "o", "ln2", "fc1", "act", "fc2"):
            (n,) = g.find(f"{b}.{layer}: {type(getattr(net[int(b)], layer)).__name__}")
            assert n.cluster == box[f"{b}: Block"]
    softmax = [n for n in g.nodes.values() if n.op == "SoftmaxBackward0"]
    assert sorted(n.cluster for n in softmax) == sorted(box.values())  # one attention per block, in its box
    titles, edges = titles_and_edges(g)
    assert ("0.ln1: LayerNorm", "0.q: Linear") in edges and ("0.act: GELU", "0.fc2: Linear") in edges
    src = g.source
    assert src.count("subgraph cluster_") == 2 and 'label="0: Block"' in src
    loss.backward()
    assert all(n.grad is not None for n in g.nodes.values())


# -------------------------------------------------------------------------------------- monitor


def _tiny_net():
    bp.manual_seed(3)
    net = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU(), bp.nn.Linear(4, 2), bp.nn.Tanh())
    with bp.no_grad():
        net[0].bias.copy_(bp.tensor([0.1, -50.0, 0.2, -50.0]))  # units 1 and 3: dead for any small input
        net[2].weight.mul_(8.0)  # drives tanh into saturation
    return net


def _np_forward(net, x):
    W1, b1, W2, b2 = (np_(p) for p in net.parameters())
    z1 = x @ W1.T + b1
    h = np.maximum(z1, 0)
    z2 = h @ W2.T + b2
    return z1, h, z2, np.tanh(z2)


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_monitor_quantities_match_hand_computations(with_optimizer):
    net = _tiny_net()
    opt = bp.optim.SGD(net.parameters(), lr=0.1)
    mon = viz.Monitor(net, opt if with_optimizer else None, warn=False)
    xs = np.random.default_rng(0).normal(size=(8, 3))
    target = bp.zeros(8, 2)
    for step in range(2):
        before = [np_(p) for p in net.parameters()]
        z1, h, z2, t = _np_forward(net, xs)
        loss = F.mse_loss(net(bp.tensor(xs, dtype=bp.float32)), target)
        opt.zero_grad()
        loss.backward()
        grads = [np_(p.grad) for p in net.parameters()]
        opt.step()
        if not with_optimizer:
            mon.step()
        after = [np_(p) for p in net.parameters()]
        rows = {r["layer"]: r for r in mon.records if r["step"] == step}
        assert set(rows) == {"0", "1", "2", "3"}
        for layer, k in (("0", 0), ("2", 2)):
            r = rows[layer]
            w = math.sqrt(sum((a ** 2).sum() for a in after[k : k + 2]))
            gn = math.sqrt(sum((a ** 2).sum() for a in grads[k : k + 2]))
            upd = math.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after[k : k + 2], before[k : k + 2])))
            w0 = math.sqrt(sum((a ** 2).sum() for a in before[k : k + 2]))
            assert r["weight_norm"] == pytest.approx(w, rel=1e-5)
            assert r["grad_norm"] == pytest.approx(gn, rel=1e-5)
            assert r["update_ratio"] == pytest.approx(upd / w0, rel=1e-4)
            assert r["dead_frac"] is None and r["saturated_frac"] is None
        for layer, a in (("0", z1), ("1", h), ("2", z2), ("3", t)):
            assert rows[layer]["act_mean"] == pytest.approx(a.mean(), rel=1e-4, abs=1e-6)
            assert rows[layer]["act_std"] == pytest.approx(a.std(ddof=1), rel=1e-4)
        dead = np.mean(np.all(h == 0, axis=0))
        assert dead >= 0.5 and rows["1"]["dead_frac"] == pytest.approx(dead)
        assert rows["3"]["saturated_frac"] == pytest.approx(np.mean(np.abs(t) > 0.97))
        assert rows["1"]["weight_norm"] is None and rows["1"]["grad_norm"] is None
    mon.detach()


def test_monitor_ignores_eval_passes_and_costs_nothing_detached():
    net = _tiny_net()
    opt = bp.optim.SGD(net.parameters(), lr=0.1)
    mon = viz.Monitor(net, opt, warn=False)
    net.eval()
    with bp.no_grad():
        net(bp.randn(4, 3))
    net.train()
    loss = net(bp.randn(4, 3)).sum()
    loss.backward()
    opt.step()
    assert len(mon.records) == 4
    mon.detach()
    assert not mon.attached
    for m in net.modules():
        assert not m.__dict__.get("_forward_hooks")
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    net(bp.randn(4, 3)).sum().backward()
    opt.step()
    assert len(mon.records) == 4


def _train_steps(net, steps, lr=0.01, x=None):
    opt = bp.optim.SGD(net.parameters(), lr=lr)
    mon = viz.Monitor(net, opt)
    x = bp.randn(16, net[0].in_features) if x is None else x
    y = bp.randint(0, 2, (16,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    mon.detach()
    return mon, [w for w in caught if issubclass(w.category, viz.TrainingWarning)]


def test_monitor_warns_once_about_dead_layers():
    bp.manual_seed(4)
    net = bp.nn.Sequential(bp.nn.Linear(5, 8), bp.nn.ReLU(), bp.nn.Linear(8, 2))
    with bp.no_grad():
        net[0].bias.fill_(-100.0)
    mon, caught = _train_steps(net, 8)
    assert [str(w.message) for w in caught if "dead" in str(w.message)] and len(caught) >= 1
    assert sum("dead layers" in str(w.message) for w in caught) == 1
    assert "'1' (ReLU) 100% dead ReLU units" in mon.warned["dead"]


def test_monitor_warns_about_exploding_and_vanishing_gradients():
    bp.manual_seed(5)
    net = bp.nn.Sequential(bp.nn.Linear(5, 8), bp.nn.ReLU(), bp.nn.Linear(8, 2))
    with bp.no_grad():
        net[2].weight.mul_(1e-9)  # almost no gradient flows back through layer 2 into layer 0
    mon, caught = _train_steps(net, 5, lr=0.0)
    assert "vanishing" in mon.warned and "'0' (Linear)" in mon.warned["vanishing"]
    assert sum("vanishing" in str(w.message) for w in caught) == 1
    net2 = bp.nn.Sequential(bp.nn.Linear(5, 8), bp.nn.ReLU(), bp.nn.Linear(8, 2))
    with bp.no_grad():
        net2[0].bias.fill_(1e3)  # huge activations: layer 2's gradient (delta x h) dwarfs its weights
    mon2, caught2 = _train_steps(net2, 3, lr=0.0)
    assert "exploding" in mon2.warned and sum("exploding" in str(w.message) for w in caught2) == 1


def test_monitor_writes_jsonl_csv_and_plots(tmp_path):
    net = _tiny_net()
    mon, _ = _train_steps(net, 3)
    p = mon.to_jsonl(str(tmp_path / "m.jsonl"))
    rows = [json.loads(s) for s in open(p)]
    assert len(rows) == 3 * 4 and rows[0]["step"] == 0 and set(viz.QUANTITIES) <= set(rows[0])
    c = mon.to_csv(str(tmp_path / "m.csv"))
    lines = open(c).read().splitlines()
    assert lines[0].split(",")[:3] == ["step", "layer", "type"] and len(lines) == 13
    h = mon.history("grad_norm")
    assert set(h) == {"0", "2"} and h["0"][0] == [0, 1, 2]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        tool_or_skip("matplotlib (optional; the plots)", False)
    paths = mon.plot(str(tmp_path / "plots"))
    assert any(q.endswith("grad_norm.png") for q in paths)
    assert open(paths[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------- attribution


def test_ig_closed_form_on_a_quadratic_loss():
    """L(theta) = (theta.x - y)^2 from a zero baseline: IG = theta * 2x (theta.x / 2 - y)."""
    lin = bp.nn.Linear(3, 1, bias=False).double()
    x = bp.tensor([[0.5, -1.0, 2.0]], dtype=bp.float64)
    y = bp.tensor([[0.3]], dtype=bp.float64)
    a = viz.attribute(lin, F.mse_loss, x, y, steps=2)
    th, xv = np_(lin.weight)[0], np_(x)[0]
    ref = th * 2 * xv * (th @ xv / 2 - 0.3)
    np.testing.assert_allclose(a.values["weight"][0], ref, rtol=1e-12, atol=1e-14)
    assert a.baseline_loss == pytest.approx(0.09, rel=1e-12)
    assert a.relative_residual < 1e-12


def test_attribution_completeness_on_the_mlp_and_lenet(trained, digits):
    x, y = digits.x_test[:1], digits.y_test[:1]
    for kind in ("mlp", "lenet"):
        m, init = trained[kind]
        for p in m.parameters():
            p.grad = None
        before = {k: np_(v) for k, v in m.state_dict().items()}
        for baseline in ("zeros", init):
            a = viz.attribute(m, F.cross_entropy, x, y, baseline=baseline)
            assert a.relative_residual < 0.01, (kind, a)
            with bp.no_grad():
                assert a.loss == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)
            assert sum(a.per_layer.values()) == pytest.approx(a.total, rel=1e-9)
            for layer, v in a.per_neuron.items():
                assert v.sum() == pytest.approx(a.per_layer[layer], rel=1e-6, abs=1e-9)
        assert a.baseline_loss != pytest.approx(math.log(10))
        for k, v in m.state_dict().items():  # the trained weights come back bit for bit
            assert np.array_equal(np_(v), before[k])
        assert all(p.grad is None for p in m.parameters())  # .grad is left alone
    m, _ = trained["mlp"]
    a = viz.attribute(m, F.cross_entropy, x, y)
    assert a.baseline_loss == pytest.approx(math.log(10), rel=1e-6)  # zero weights: uniform softmax
    assert set(a.per_neuron) == {"0", "2"} and a.per_neuron["2"].shape == (10,)
    lenet, _ = trained["lenet"]
    b = viz.attribute(lenet, F.cross_entropy, x, y)
    assert b.per_neuron["features.1"].shape == (6,) and b.per_neuron["classifier.5"].shape == (10,)


def test_ig_on_inputs_closed_form_and_completeness(trained, digits):
    lin = bp.nn.Linear(4, 3).double()
    x = bp.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=bp.float64)
    ia = viz.attribute_input(lin, x, target=[2], output="logit", steps=4)
    np.testing.assert_allclose(ia.values[0], np_(x)[0] * np_(lin.weight)[2], rtol=1e-12)
    m, _ = trained["mlp"]
    xb, yb = digits.x_test[:8], digits.y_test[:8]
    ia = viz.attribute_input(m, xb, target=yb)
    assert ia.values.shape == (8, 64) and ia.heatmap(0).shape == (8, 8)
    assert ia.relative_residual < 0.01
    with bp.no_grad():
        lp = np_(m(xb).log_softmax(1))[np.arange(8), np_(yb).astype(int)]
    np.testing.assert_allclose(ia.output, lp, rtol=1e-5)


# ----------------------------------------------------------------------------------------- LCA


def test_lca_is_exact_on_a_quadratic_and_leaves_training_alone():
    """For a linear model with MSE the loss is quadratic in theta, so Simpson's rule is exact."""
    rng = np.random.default_rng(0)
    X = bp.tensor(rng.normal(size=(32, 4)), dtype=bp.float64)
    Y = bp.tensor(rng.normal(size=(32, 1)), dtype=bp.float64)

    def run(allocate):
        bp.manual_seed(0)
        lin = bp.nn.Linear(4, 1).double()
        opt = bp.optim.SGD(lin.parameters(), lr=0.05, momentum=0.5)
        h = fit(lin, opt, F.mse_loss, bp.data.TensorDataset(X, Y), epochs=3, batch_size=8, seed=0, progress=False,
                allocate_loss=allocate, lca_data=(X, Y))
        return lin, h

    lin, h = run(True)
    lin2, _ = run(False)
    for p, q in zip(lin.parameters(), lin2.parameters()):
        assert np.array_equal(np_(p), np_(q))  # allocating does not perturb the training
    a = h.lca
    assert a.steps == 12 and len(a.loss) == 13
    assert max(abs(r) for r in a.residuals) < 1e-12
    with bp.no_grad():
        assert a.loss[-1] == pytest.approx(F.mse_loss(lin(X), Y).item(), rel=1e-12)
    assert a.total == pytest.approx(a.loss_change, rel=1e-10)
    assert sum(a.shares().values()) == pytest.approx(1.0, rel=1e-9)
    for name, cum in a.cumulative.items():
        assert cum.sum() == pytest.approx(sum(a.per_tensor[name]), rel=1e-9, abs=1e-15)


class _Quartic(bp.nn.Module):
    """out = theta (broadcast over the batch); with the loss sum((out - y)^4) the loss is
    separable, so each coordinate's exact share of a step is its own loss change."""

    def __init__(self, theta):
        super().__init__()
        self.theta = bp.nn.Parameter(bp.tensor(theta, dtype=bp.float64))

    def forward(self, x):
        return x * self.theta


def test_lca_matches_exact_per_coordinate_loss_changes_on_a_quartic():
    """The RK4 rule integrates the gradient (cubic along the step here) exactly; a trapezoid
    or midpoint rule would not."""
    theta0 = np.array([0.9, -0.4, 1.6, 0.05, -1.2])
    target = np.array([0.2, 0.1, -0.3, 0.4, 0.0])
    x, y = bp.ones(1, 5, dtype=bp.float64), bp.tensor(target[None], dtype=bp.float64)
    m = _Quartic(theta0)
    opt = bp.optim.SGD(m.parameters(), lr=0.05)

    def quartic(out, t):
        return ((out - t) ** 4).sum()

    h = fit(m, opt, quartic, bp.data.TensorDataset(x, y), epochs=6, batch_size=1, progress=False,
            allocate_loss=True, lca_data=(x, y))
    a = h.lca
    theta1 = np_(m.theta)
    exact = (theta1 - target) ** 4 - (theta0 - target) ** 4
    np.testing.assert_allclose(a.cumulative["theta"], exact, rtol=1e-12, atol=1e-14)
    assert max(abs(r) for r in a.residuals) < 1e-13
    assert a.loss[0] == pytest.approx(((theta0 - target) ** 4).sum(), rel=1e-14)


def test_lca_completeness_on_a_short_mlp_run(digits):
    bp.manual_seed(0)
    m = models.mlp(64, [32], 10)
    opt = bp.optim.Adam(m.parameters(), lr=3e-3)
    h = fit(m, opt, F.cross_entropy, bp.data.TensorDataset(digits.x_train[:640], digits.y_train[:640]), epochs=1,
            progress=False, allocate_loss=True, lca_batch=128)
    a = h.lca
    assert a.steps == 20 and a.loss_change < 0
    assert a.relative_residual < 0.01 and a.step_relative_residual < 0.01
    assert set(a.per_layer()) == {"0", "2"}
    s = a.summary()
    assert s["steps"] == 20 and json.dumps(s)
    with pytest.raises(ValueError, match="lca_data"):
        fit(m, opt, F.cross_entropy, bp.data.stream(digits.x_train[:4], digits.y_train[:4]), mode="online",
            progress=False, allocate_loss=True)


# ---------------------------------------------------------------------------- Rust parity

def _dot_structure(src):
    """(node id, first label line) in order, and the edge set, of a DOT text."""
    import re

    nodes = re.findall(r'^\s+(n\d+) \[label="((?:[^"\\]|\\.)*?)(?:\\n|")', src, flags=re.M)
    edges = set(re.findall(r"^\s+(n\d+) -> (n\d+);", src, flags=re.M))
    return nodes, edges


def test_rust_to_dot_draws_the_same_graph_as_python():
    """The core's viz::to_dot (for Rust users) follows the Python graph's format: the same node
    ids in the same depth-first order, the same titles (op names, parameter names) and edges."""
    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Linear(4, 5), bp.nn.Tanh(), bp.nn.Linear(5, 3))
    x = bp.randn(6, 4)
    y = bp.tensor([0, 1, 2, 0, 1, 2])
    loss = bp.nn.functional.cross_entropy(model(x), y)
    params = dict(model.named_parameters())
    py_nodes, py_edges = _dot_structure(viz.graph(loss, params=params).source)
    rs_nodes, rs_edges = _dot_structure(bp._core._to_dot([loss], list(params.items())))
    assert len(py_nodes) > 8 and py_nodes == rs_nodes
    assert py_edges == rs_edges
    assert {t for _, t in rs_nodes} >= set(params)  # every parameter drawn under its name
    loss.backward()
    # after backward the freed graph still draws its leaves, with their gradients
    rs_leaf = bp._core._to_dot([params["0.weight"]], [("0.weight", params["0.weight"])])
    g = params["0.weight"].grad.numpy().astype(np.float64)
    assert f"grad |.|={float(np.sqrt((g * g).sum())):.3g}" in rs_leaf
