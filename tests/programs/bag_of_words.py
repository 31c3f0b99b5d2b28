import backprop_rs as torch
from backprop_rs import nn
from backprop_rs.utils.data import DataLoader

# A bag-of-words text classifier in the spirit of PyTorch's text classification tutorial
# (nn.EmbeddingBag(mode="mean") + Linear, SGD with gradient clipping and StepLR), written with
# nn.Embedding and a masked mean over the tokens, on the sentences of the "Deep Learning with
# PyTorch" bag-of-words example.

data = [("me gusta comer en la cafeteria".split(), "SPANISH"),
        ("Give it to me".split(), "ENGLISH"),
        ("No creo que sea una buena idea".split(), "SPANISH"),
        ("No it is not a good idea to get lost at sea".split(), "ENGLISH")]

test_data = [("Yo creo que si".split(), "SPANISH"),
             ("it is lost on me".split(), "ENGLISH")]

PAD = 0
word_to_ix = {"<pad>": PAD}
for sent, _ in data + test_data:
    for word in sent:
        if word not in word_to_ix:
            word_to_ix[word] = len(word_to_ix)

label_to_ix = {"SPANISH": 0, "ENGLISH": 1}
VOCAB_SIZE = len(word_to_ix)
NUM_LABELS = 2
EMBED_DIM = 8


def collate_batch(batch):
    """Pads the sentences of a batch to the longest one; returns labels, token ids and lengths."""
    labels = torch.tensor([label_to_ix[label] for _, label in batch])
    lengths = torch.tensor([len(sent) for sent, _ in batch])
    longest = int(lengths.max().item())
    text = torch.tensor([[word_to_ix[w] for w in sent] + [PAD] * (longest - len(sent)) for sent, _ in batch])
    return labels, text, lengths


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super(TextClassificationModel, self).__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self):
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text, lengths):
        mask = (text != PAD).unsqueeze(-1).float()
        embedded = (self.embedding(text) * mask).sum(dim=1) / lengths.unsqueeze(1)  # EmbeddingBag's "mean"
        return self.fc(embedded)


def main(epochs=20, seed=0, verbose=True):
    torch.manual_seed(seed)
    model = TextClassificationModel(VOCAB_SIZE, EMBED_DIM, NUM_LABELS)
    initial = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    LR = 5  # learning rate
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.9)
    train_dataloader = DataLoader(data, batch_size=2, shuffle=False, collate_fn=collate_batch)

    losses, norms = [], []
    for epoch in range(1, epochs + 1):
        model.train()
        total_acc, total_count = 0, 0
        for idx, (label, text, lengths) in enumerate(train_dataloader):
            optimizer.zero_grad()
            predicted_label = model(text, lengths)
            loss = criterion(predicted_label, label)
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)))
            optimizer.step()
            losses.append(loss.item())
            total_acc += (predicted_label.argmax(1) == label).sum().item()
            total_count += label.size(0)
        scheduler.step()
        if verbose:
            print(f"| epoch {epoch:3d} | accuracy {total_acc / total_count:8.3f} | lr {scheduler.get_last_lr()[0]:.3f}")

    model.eval()
    with torch.no_grad():
        label, text, lengths = collate_batch(test_data)
        probs = torch.softmax(model(text, lengths), dim=1)
    if verbose:
        for (sent, _), p in zip(test_data, probs):
            print(" ".join(sent), "->", ["SPANISH", "ENGLISH"][int(p.argmax())], f"{p.max():.3f}")
    return {"initial": initial, "losses": losses, "norms": norms, "test_probs": probs.numpy(),
            "final": {k: v.detach().numpy() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    main()
