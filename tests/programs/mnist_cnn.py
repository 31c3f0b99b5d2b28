import backprop_rs as torch
import backprop_rs.nn as nn
import backprop_rs.nn.functional as F
import backprop_rs.optim as optim
from backprop_rs.optim.lr_scheduler import StepLR
from backprop_rs.utils.data import DataLoader, TensorDataset

# PyTorch's examples/mnist/main.py, smaller (4 and 8 channels, 32 hidden units, no dropout so that
# a NumPy reference can follow every step) and on random MNIST-shaped data.


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.fc1 = nn.Linear(1152, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(model, device, train_loader, optimizer, epoch, losses, log_interval=2, verbose=True):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if verbose and batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def test(model, device, test_loader, verbose=True):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)
    if verbose:
        print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
            test_loss, correct, len(test_loader.dataset),
            100. * correct / len(test_loader.dataset)))
    return test_loss, correct


def main(epochs=2, seed=1, verbose=True, device=None):
    use_cuda = torch.cuda.is_available()
    torch.manual_seed(seed)
    device = torch.device(device or ("cuda" if use_cuda else "cpu"))

    # random "images" and labels in MNIST's shapes, normalised as the example does
    images = (torch.rand(64, 1, 28, 28) - 0.1307) / 0.3081
    labels = torch.randint(0, 10, (64,))
    dataset1 = TensorDataset(images[:48], labels[:48])
    dataset2 = TensorDataset(images[48:], labels[48:])
    train_loader = DataLoader(dataset1, batch_size=16)
    test_loader = DataLoader(dataset2, batch_size=16)

    model = Net().to(device)
    initial = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)

    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for epoch in range(1, epochs + 1):
        train(model, device, train_loader, optimizer, epoch, losses, verbose=verbose)
        test_loss, correct = test(model, device, test_loader, verbose=verbose)
        scheduler.step()

    return {"initial": initial, "images": images.numpy(), "labels": labels.numpy(), "losses": losses,
            "test_loss": test_loss, "correct": correct,
            "final": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    main()
