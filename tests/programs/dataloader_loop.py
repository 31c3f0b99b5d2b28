import backprop_rs as torch
import os

import numpy as np
from backprop_rs import nn
from backprop_rs.utils.data import DataLoader, Dataset, random_split

# The everyday training loop: a custom Dataset, random_split into train/validation, a shuffled
# DataLoader with a seeded Generator, an MLP trained with SGD (momentum, weight decay) and a
# MultiStepLR schedule, validation under no_grad, and a checkpoint saved and loaded back.


class RegressionDataset(Dataset):
    """y = x . w + 0.1 noise, from a NumPy generator (as data often comes); items are
    (features, target, index)."""

    def __init__(self, n=120, d=4, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, d)).astype(np.float32)
        w = np.arange(1, d + 1, dtype=np.float32) / d
        y = x @ w + 0.1 * rng.standard_normal(n).astype(np.float32)
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y).unsqueeze(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return self.x[idx], self.y[idx], idx


class MLP(nn.Module):
    def __init__(self, d_in=4, hidden=16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_in, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.layers(x)


def main(out_dir=".", epochs=3, seed=0, verbose=True):
    torch.manual_seed(seed)
    dataset = RegressionDataset()
    train_set, val_set = random_split(dataset, [96, 24], generator=torch.Generator().manual_seed(42))
    g = torch.Generator()
    g.manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=16, shuffle=True, generator=g)
    val_loader = DataLoader(val_set, batch_size=8)

    model = MLP()
    initial = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)

    batches, losses, val_losses = [], [], []
    for epoch in range(epochs):
        model.train()
        for x, y, idx in train_loader:
            batches.append(idx.numpy().copy())
            pred = model(x)
            loss = loss_fn(pred, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()

        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y, _ in val_loader:
                total += loss_fn(model(x), y).item() * len(x)
                count += len(x)
        val_losses.append(total / count)
        if verbose:
            print(f"epoch {epoch}: train loss {losses[-1]:.4f}  val loss {val_losses[-1]:.4f}  "
                  f"lr {scheduler.get_last_lr()[0]:.4f}")

    path = os.path.join(out_dir, "mlp.pt")
    torch.save(model.state_dict(), path)
    restored = MLP()
    restored.load_state_dict(torch.load(path))
    x_all = dataset.x
    with torch.no_grad():
        same = bool((restored(x_all) == model(x_all)).all())

    return {"initial": initial, "x": dataset.x.numpy(), "y": dataset.y.numpy(), "batches": batches,
            "val_indices": list(val_set.indices), "losses": losses, "val_losses": val_losses,
            "restored_matches": same,
            "final": {k: v.detach().numpy() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        main(d)
