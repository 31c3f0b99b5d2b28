import backprop_rs as torch
import math

# PyTorch's "Learning PyTorch with Examples" tutorial, the custom nn.Module version: fit
# y = sin(x) with a third-order polynomial y = a + b x + c x^2 + d x^3.


class Polynomial3(torch.nn.Module):
    def __init__(self):
        """Instantiate four parameters and assign them as member parameters."""
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3'


def main(steps=2000, seed=0, verbose=True):
    torch.manual_seed(seed)
    # Create Tensors to hold input and outputs.
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)

    model = Polynomial3()
    initial = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    losses = []
    for t in range(steps):
        # Forward pass: Compute predicted y by passing x to the model
        y_pred = model(x)

        # Compute and print loss
        loss = criterion(y_pred, y)
        losses.append(loss.item())
        if verbose and t % 100 == 99:
            print(t, f"{loss:.4f}")

        # Zero gradients, perform a backward pass, and update the weights.
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    if verbose:
        print(f'Result: {model.string()}')
    return {"initial": initial, "x": x.numpy(), "losses": losses,
            "final": {k: v.detach().numpy() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    main()
