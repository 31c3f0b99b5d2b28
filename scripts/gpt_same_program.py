"""A plain PyTorch character GPT (nanoGPT's shakespeare_char CPU recipe: 4 layers, 4 heads,
128 wide, context 64, batch 12, AdamW 1e-3 -> 1e-4 with 100 warm-up steps, clipping 1.0), run
unchanged with `import torch` or with backprop_rs in its place: the same-machine comparison of
the GPT job. Usage: python scripts/gpt_same_program.py torch|backprop_rs [ITERS]"""
import math, sys, time, importlib
import numpy as np
torch = importlib.import_module(sys.argv[1])
nn = torch.nn
F = torch.nn.functional
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
torch.manual_seed(1337)
# the text backprop_rs ships (reading it does not touch the engine under test)
from backprop_rs.data.shakespeare import load_text  # noqa: E402

text = load_text()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
data = np.array([stoi[c] for c in text], dtype=np.int64)
n = int(0.9 * len(data)); train, val = data[:n], data[n:]
B, T, L, H, E = 12, 64, 4, 4, 128
rng = np.random.default_rng(1337)
def batch(d):
    ix = rng.integers(0, len(d) - T, B)
    x = np.stack([d[i:i + T] for i in ix]); y = np.stack([d[i + 1:i + 1 + T] for i in ix])
    return torch.from_numpy(x), torch.from_numpy(y)
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(E, bias=False); self.ln_2 = nn.LayerNorm(E, bias=False)
        self.c_attn = nn.Linear(E, 3 * E, bias=False); self.c_proj = nn.Linear(E, E, bias=False)
        self.c_fc = nn.Linear(E, 4 * E, bias=False); self.mlp_proj = nn.Linear(4 * E, E, bias=False)
    def forward(self, x):
        b, t, e = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(E, dim=2)
        q = q.view(b, t, H, e // H).transpose(1, 2); k = k.view(b, t, H, e // H).transpose(1, 2)
        v = v.view(b, t, H, e // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, e))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))
class GPT(nn.Module):
    def __init__(self, V):
        super().__init__()
        self.wte = nn.Embedding(V, E); self.wpe = nn.Embedding(T, E)
        self.h = nn.ModuleList([Block() for _ in range(L)]); self.ln_f = nn.LayerNorm(E, bias=False)
        self.head = nn.Linear(E, V, bias=False); self.head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02)
    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for blk in self.h:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
model = GPT(len(chars))
decay = [p for p in model.parameters() if p.dim() >= 2]; nodecay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
def lr_at(it):
    if it < 100: return 1e-3 * (it + 1) / 101
    if it > iters: return 1e-4
    r = (it - 100) / (iters - 100); return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * 9e-4
t0 = time.perf_counter()
for it in range(iters):
    for g in opt.param_groups: g["lr"] = lr_at(it)
    x, y = batch(train)
    loss = model(x, y)
    opt.zero_grad(set_to_none=True); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    if it % 500 == 0: print(f"it {it} loss {loss.item():.4f}", flush=True)
dt = time.perf_counter() - t0
model.eval()
with torch.no_grad():
    vl = sum(model(*batch(val)).item() for _ in range(200)) / 200
print(f"{sys.argv[1]}: {iters} iters {dt:.1f} s, {iters*B*T/dt:,.0f} tok/s, val(200 batches) {vl:.4f}, threads {torch.get_num_threads()}")
