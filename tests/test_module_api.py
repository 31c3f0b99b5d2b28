"""nn.Module's PyTorch surface: containers (Sequential, ModuleList, ModuleDict, ParameterList,
ParameterDict), traversal with duplicates, get_submodule/get_parameter/get_buffer, registration
rules, state_dict / load_state_dict (PyTorch's keys, messages, strict and assign), and repr
against strings written out in PyTorch's format."""

from collections import OrderedDict

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("count", bp.zeros(1))
        self.register_buffer("scratch", bp.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Block()
        self.b = Block()
        self.shared = self.a  # the same module under two names
        self.head = nn.Linear(3, 2, bias=False)


# ------------------------------------------------------------------ containers

def test_sequential_list_operations():
    l0, l1, l2, l3 = nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 3), nn.Tanh()
    s = nn.Sequential(l0, l1, l2)
    assert len(s) == 3 and s[0] is l0 and s[-1] is l2 and list(s) == [l0, l1, l2]
    with pytest.raises(IndexError, match="index 3 is out of range"):
        s[3]
    sl = s[1:]
    assert isinstance(sl, nn.Sequential) and list(sl) == [l1, l2] and list(sl._modules) == ["1", "2"]
    s.append(l3)
    assert list(s._modules) == ["0", "1", "2", "3"] and s[3] is l3
    s.insert(1, nn.Identity())
    assert [type(m).__name__ for m in s] == ["Linear", "Identity", "ReLU", "Linear", "Tanh"]
    assert list(s._modules) == ["0", "1", "2", "3", "4"]
    s.insert(-1, nn.Sigmoid())
    assert type(s[4]).__name__ == "Sigmoid"
    with pytest.raises(IndexError, match="Index out of range: 9"):
        s.insert(9, nn.ReLU())
    del s[1]
    assert list(s._modules) == ["0", "1", "2", "3", "4"] and s[1] is l1  # renumbered
    assert s.pop(-1) is l3 and len(s) == 4
    del s[2:]
    assert list(s) == [l0, l1]
    s.extend([l2])
    s[0] = nn.Identity()
    assert type(s[0]).__name__ == "Identity" and s[2] is l2
    both = nn.Sequential(l0) + nn.Sequential(l1, l2)
    assert list(both) == [l0, l1, l2]
    rep = nn.Sequential(l0, l1) * 2
    assert list(rep) == [l0, l1, l0, l1] and len(list(rep.parameters())) == 2  # shared, not copied
    s2 = nn.Sequential(l0)
    s2 += nn.Sequential(l1)
    assert list(s2) == [l0, l1]
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential class"):
        nn.Sequential() + [l0]
    with pytest.raises(ValueError, match="Non-positive multiplication factor"):
        nn.Sequential(l0) * 0
    od = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in od.named_children()] == ["enc", "act"]
    x = bp.randn(4, 1)
    np.testing.assert_allclose(nn.Sequential(l0, l1)(x).detach().numpy(), np.maximum(l0(x).detach().numpy(), 0))


def test_module_list_and_dict():
    mods = [nn.Linear(2, 2) for _ in range(3)]
    ml = nn.ModuleList(mods)
    assert len(ml) == 3 and ml[-1] is mods[2] and isinstance(ml[:2], nn.ModuleList)
    ml.append(nn.ReLU()).extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "Linear", "Linear", "ReLU", "Tanh"]
    del ml[0]
    assert ml[0] is mods[0] and list(ml._modules) == ["0", "1", "2", "3", "4"]
    assert ml.pop(3).__class__.__name__ == "ReLU" and len(ml) == 4
    ml[3] = nn.Sigmoid()
    assert len(list(ml.parameters())) == 6 and len(list((ml + [nn.Linear(1, 1)]).parameters())) == 8
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable, but got int"):
        ml.extend(3)
    with pytest.raises(IndexError, match="index 10 is out of range"):
        ml[10]
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        ml(bp.zeros(1))

    md = nn.ModuleDict({"b": nn.Linear(1, 1), "a": nn.ReLU()})
    assert list(md) == ["b", "a"] and "a" in md and len(md) == 2  # insertion order kept
    md["c"] = nn.Tanh()
    md.update([("d", nn.Identity())])
    md.update(OrderedDict(e=nn.Identity()))
    assert list(md.keys()) == ["b", "a", "c", "d", "e"]
    assert [n for n, _ in md.named_parameters()] == ["b.weight", "b.bias"]
    assert md.pop("a").__class__.__name__ == "ReLU" and "a" not in md
    assert [k for k, _ in md.items()] == ["b", "c", "d", "e"] and len(list(md.values())) == 4
    with pytest.raises(ValueError, match="ModuleDict update sequence element #0 has length 1; 2 is required"):
        md.update([("x",)])
    with pytest.raises(TypeError, match="ModuleDict.update should be called with an iterable"):
        md.update(5)
    md.clear()
    assert len(md) == 0


def test_parameter_list_and_dict():
    pl = nn.ParameterList([bp.zeros(2, 3), nn.Parameter(bp.ones(1)), "not a tensor"])
    assert isinstance(pl[0], nn.Parameter) and pl[0].requires_grad  # tensors become Parameters
    assert len(pl) == 3 and pl[2] == "not a tensor" and len(list(pl.parameters())) == 2
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    pl.append(bp.zeros(4))
    assert isinstance(pl[-1], nn.Parameter) and len(pl[1:3]) == 2
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable"):
        pl.extend(bp.zeros(3))
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        pl()

    pd = nn.ParameterDict({"w": bp.ones(2), "b": bp.zeros(1, dtype=bp.float64)})
    assert list(pd) == ["b", "w"]  # a plain dict is inserted sorted, as in PyTorch
    assert isinstance(pd["w"], nn.Parameter) and "w" in pd and pd.get("zz", 3) == 3
    pd["z"] = bp.zeros(3)
    assert [n for n, _ in pd.named_parameters()] == ["b", "w", "z"]
    assert pd.pop("w").shape == (2,) and list(pd.keys()) == ["b", "z"]
    assert pd.popitem()[0] == "z" and len(pd) == 1
    assert pd.setdefault("q", bp.ones(1)).shape == (1,)
    merged = pd | nn.ParameterDict(OrderedDict(m=bp.ones(1)))
    assert list(merged) == ["b", "q", "m"] and list(pd) == ["b", "q"]
    with pytest.raises(TypeError, match="Index given to ParameterDict cannot be used as a key"):
        pd[1] = bp.ones(1)
    with pytest.raises(KeyError, match=r"parameter name can.{1,2}t contain"):
        pd["a.b"] = bp.ones(1)


# ------------------------------------------------------------------ traversal and lookup

def test_named_modules_parameters_with_duplicates():
    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "a", "a.fc", "b", "b.fc", "head"]
    all_names = [n for n, _ in net.named_modules(remove_duplicate=False)]
    assert all_names == ["", "a", "a.fc", "b", "b.fc", "shared", "shared.fc", "head"]
    assert [n for n, _ in net.named_modules(prefix="net")][:2] == ["net", "net.a"]
    memo = {net.b}
    assert [n for n, _ in net.named_modules(memo=memo)] == ["", "a", "a.fc", "head"]  # memo skips b
    names = [n for n, _ in net.named_parameters()]
    assert names == ["a.fc.weight", "a.fc.bias", "b.fc.weight", "b.fc.bias", "head.weight"]
    dup = [n for n, _ in net.named_parameters(remove_duplicate=False)]
    assert dup == names[:4] + ["shared.fc.weight", "shared.fc.bias", "head.weight"]
    assert [n for n, _ in net.named_buffers()] == ["a.count", "a.scratch", "b.count", "b.scratch"]
    assert [n for n, _ in net.named_parameters(prefix="m", recurse=False)] == []
    assert [n for n, _ in net.named_children()] == ["a", "b", "head"]  # the shared child once


def test_get_submodule_parameter_buffer():
    net = Net()
    assert net.get_submodule("") is net and net.get_submodule("b.fc") is net.b.fc
    assert net.get_parameter("a.fc.weight") is net.a.fc.weight
    assert net.get_buffer("b.count") is net.b.count
    with pytest.raises(AttributeError, match="Block has no attribute `nope`"):
        net.get_submodule("a.nope")
    with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
        net.get_submodule("head.weight.x")
    with pytest.raises(AttributeError, match="`count` is not an nn.Parameter"):
        net.get_parameter("a.count")
    with pytest.raises(AttributeError, match="Linear has no attribute `gamma`"):
        net.get_parameter("head.gamma")
    with pytest.raises(AttributeError, match="`weight` is not a buffer"):
        net.get_buffer("head.weight")


def test_registration_rules():
    m = nn.Module()
    m.plain = 3
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        m.register_buffer("plain", bp.zeros(1))
    with pytest.raises(KeyError, match=r"buffer name can.{1,2}t contain"):
        m.register_buffer("a.b", bp.zeros(1))
    with pytest.raises(KeyError, match=r"parameter name can.{1,2}t be empty string"):
        m.register_parameter("", None)
    with pytest.raises(TypeError, match="parameter name should be a string. Got int"):
        m.register_parameter(1, None)
    with pytest.raises(TypeError, match="cannot assign 'backprop_rs.FloatTensor' object to parameter 'w'"):
        m.register_parameter("w", bp.zeros(1))
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor to parameter 'w'"):
        m.register_parameter("w", _NonLeaf())
    with pytest.raises(KeyError, match=r"module name can.{1,2}t contain .*got: x.y"):
        m.add_module("x.y", nn.ReLU())
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("x", 3)
    m.w = nn.Parameter(bp.zeros(1))
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter 'w'"):
        m.w = 5
    m.w = None
    assert "w" in m._parameters and m.w is None
    lin = nn.Linear(2, 2)
    order = list(lin._parameters)
    lin.weight = nn.Parameter(bp.zeros(2, 2))
    assert list(lin._parameters) == order  # re-assigning keeps the parameter's place
    m.register_buffer("buf", bp.ones(1), persistent=False)
    assert "buf" not in m.state_dict() and [n for n, _ in m.named_buffers()] == ["buf"]
    del m.buf
    m.register_buffer("buf", bp.ones(1))
    assert "buf" in m.state_dict()  # deleting forgot it was non-persistent


class _NonLeaf(nn.Parameter):
    """A Parameter whose grad_fn is set (what a Parameter built from a graph would be)."""

    def __new__(cls):
        return super().__new__(cls, bp.zeros(1))

    @property
    def grad_fn(self):
        return "MulBackward"


def test_train_eval_requires_grad_zero_grad_half():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train(1)
    assert net.requires_grad_(False) is net and not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    net.head(net.a(bp.randn(2, 3))).sum().backward()
    net.zero_grad(set_to_none=False)
    assert net.head.weight.grad.tolist() == [[0.0] * 3] * 2
    net.zero_grad()
    assert net.head.weight.grad is None
    w = net.head.weight
    assert net.half() is net and net.head.weight is w and w.dtype == bp.float16  # in place, same objects
    assert net.bfloat16().head.weight.dtype == bp.bfloat16
    net.type(bp.float64)
    assert net.head.weight.dtype == bp.float64 and net.a.count.dtype == bp.float64


# ------------------------------------------------------------------ state_dict

def test_state_dict_keys_prefix_keep_vars():
    net = Net()
    keys = list(net.state_dict())
    # PyTorch's order: a module's own parameters, then its buffers, then its children's; the shared
    # module appears under both names; non-persistent buffers don't appear
    assert keys == ["a.count", "a.fc.weight", "a.fc.bias", "b.count", "b.fc.weight", "b.fc.bias",
                    "shared.count", "shared.fc.weight", "shared.fc.bias", "head.weight"]
    assert list(net.head.state_dict(prefix="model.")) == ["model.weight"]  # the prefix is used as given
    sd = net.state_dict()
    assert not isinstance(sd["head.weight"], nn.Parameter) and not sd["head.weight"].requires_grad
    assert sd["head.weight"].data_ptr() == net.head.weight.data_ptr()  # shares memory
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight
    dest = OrderedDict()
    assert net.b.state_dict(destination=dest, prefix="x.") is dest
    assert list(dest) == ["x.count", "x.fc.weight", "x.fc.bias"]
    with pytest.warns(FutureWarning, match="Positional args"):
        assert list(net.head.state_dict(None, "p.")) == ["p.weight"]


def test_load_state_dict_strict_messages_and_atomicity():
    src, dst = Net(), Net()
    x = bp.randn(4, 3)
    res = dst.load_state_dict(src.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == [] and repr(res) == "<All keys matched successfully>"
    np.testing.assert_array_equal(dst.head(dst.a(x)).detach().numpy(), src.head(src.a(x)).detach().numpy())

    sd = src.state_dict()
    del sd["head.weight"], sd["b.count"]
    sd["b.fc.extra"] = bp.ones(1)
    sd["ghost.weight"] = bp.ones(1)
    # keys are checked module by module from the root down, so the root's unexpected key comes first
    msg = ('Error(s) in loading state_dict for Net:\n\tMissing key(s) in state_dict: "b.count", "head.weight". '
           '\n\tUnexpected key(s) in state_dict: "ghost.weight", "b.fc.extra". ')
    with pytest.raises(RuntimeError) as e:
        Net().load_state_dict(sd)
    assert str(e.value) == msg
    res = dst.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["b.count", "head.weight"] and res.unexpected_keys == ["ghost.weight", "b.fc.extra"]
    assert "missing_keys=" in repr(res)

    fresh = Net()
    before = fresh.a.fc.weight.detach().numpy().copy()
    bad = src.state_dict()
    bad["head.weight"] = bp.ones(5, 5)
    bad["a.count"] = "text"
    with pytest.raises(RuntimeError) as e:
        fresh.load_state_dict(bad)
    assert "size mismatch for head.weight: copying a param with shape (5, 5) from checkpoint, " \
           "the shape in current model is (2, 3)." in str(e.value)
    assert 'While copying the parameter named "a.count", expected torch.Tensor or Tensor-like object' in str(e.value)
    np.testing.assert_array_equal(fresh.a.fc.weight.detach().numpy(), before)  # nothing was copied
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        fresh.load_state_dict([1, 2])


def test_load_state_dict_assign_and_extra_state():
    m = nn.Linear(2, 2)
    w = bp.ones(2, 2)
    m.weight.requires_grad_(False)
    old = m.weight
    m.load_state_dict({"weight": w, "bias": bp.zeros(2)}, assign=True)
    assert m.weight is not old and isinstance(m.weight, nn.Parameter) and not m.weight.requires_grad
    assert m.weight.data_ptr() == w.data_ptr()  # the given tensor's memory, not a copy
    m2 = nn.Linear(2, 2)
    p_before = m2.weight
    m2.load_state_dict({"weight": w, "bias": bp.zeros(2)})
    assert m2.weight is p_before and m2.weight.data_ptr() != w.data_ptr()  # copied in place

    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)
            self.calls = 0

        def get_extra_state(self):
            return {"calls": self.calls}

        def set_extra_state(self, state):
            self.calls = state["calls"]

    a, b = WithExtra(), WithExtra()
    a.calls = 7
    sd = a.state_dict()
    assert list(sd) == ["_extra_state", "lin.weight", "lin.bias"] and sd["_extra_state"] == {"calls": 7}
    b.load_state_dict(sd)
    assert b.calls == 7
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "_extra_state"'):
        b.load_state_dict({k: v for k, v in sd.items() if k != "_extra_state"})
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "_extra_state"'):
        nn.Linear(1, 1).load_state_dict({"weight": bp.ones(1, 1), "bias": bp.ones(1), "_extra_state": 1})


# ------------------------------------------------------------------ repr

def test_repr_is_pytorchs():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
            self.heads = nn.ModuleList([nn.Linear(8, 2) for _ in range(3)] + [nn.Tanh()])
            self.empty = nn.ModuleList()

        def extra_repr(self):
            return "k=3,\nmode=fast"

    want = (
        "Custom(\n"
        "  k=3,\n"
        "  mode=fast\n"
        "  (body): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (heads): ModuleList(\n"
        "    (0-2): 3 x Linear(in_features=8, out_features=2, bias=True)\n"
        "    (3): Tanh()\n"
        "  )\n"
        "  (empty): ModuleList()\n"
        ")"
    )
    assert repr(Custom()) == want
    # Sequential does not fold repeats (only ModuleList does, as in PyTorch)
    s = nn.Sequential(nn.ReLU(), nn.ReLU())
    assert repr(s) == "Sequential(\n  (0): ReLU()\n  (1): ReLU()\n)"
    pl = nn.ParameterList([bp.zeros(2, 3), "x"])
    assert repr(pl) == ("ParameterList(\n    (0): Parameter containing: [backprop_rs.float32 of size 2x3]\n"
                        "    (1): Object of type: str\n)")
    pd = nn.ParameterDict({"w": bp.zeros(4, dtype=bp.float64)})
    assert repr(pd) == "ParameterDict(  (w): Parameter containing: [backprop_rs.DoubleTensor of size 4])"
    assert repr(nn.Module()) == "Module()"
    assert "shared" in repr(Net())  # a shared child prints under each name
