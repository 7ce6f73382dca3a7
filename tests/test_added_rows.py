"""`modules.hf.init_added_rows`: where the rows of added tokens start (small hand-made matrices).

The real-tokenizer side (which pieces a step tag splits into under SmolLM2's tokenizer) is
tested on SmolLM2 itself in tests/test_real_model.py.
"""

from __future__ import annotations

import torch

from modules.hf import init_added_rows


class _Untied(torch.nn.Module):
    """Just what init_added_rows looks at: an input embedding and a head with a bias."""

    def __init__(self, embedding: torch.Tensor, head: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding.from_pretrained(embedding.clone(), freeze=False)
        self.head = torch.nn.Linear(embedding.shape[1], embedding.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(head)
            self.head.bias.copy_(bias)

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head


def test_a_row_with_pieces_is_their_mean_and_a_row_without_is_the_mean_of_all():
    # 4 real rows (ids 0-3), then id 4 = an added token whose text is pieces [1, 3],
    # id 5 = a row that is no token (padding of the matrix).
    embedding = torch.tensor(
        [[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 10.0], [99.0, 99.0], [-99.0, 0.0]]
    )
    head = torch.tensor(
        [[0.0, 4.0], [2.0, 0.0], [4.0, 8.0], [6.0, 0.0], [50.0, 50.0], [50.0, 50.0]]
    )
    bias = torch.tensor([1.0, 2.0, 3.0, 6.0, 40.0, 40.0])
    model = _Untied(embedding, head, bias)
    init_added_rows(model, first=4, stop=6, pieces={4: [1, 3]})
    # by hand: rows 1 and 3 averaged; rows 0-3 averaged
    torch.testing.assert_close(model.embed.weight[4], torch.tensor([5.0, 6.0]))
    torch.testing.assert_close(model.embed.weight[5], torch.tensor([4.0, 4.0]))
    torch.testing.assert_close(model.head.weight[4], torch.tensor([4.0, 0.0]))
    torch.testing.assert_close(model.head.weight[5], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(model.head.bias[4:], torch.tensor([4.0, 3.0]))
    # the real rows are untouched
    torch.testing.assert_close(model.embed.weight[:4], embedding[:4])
    torch.testing.assert_close(model.head.weight[:4], head[:4])


def test_without_pieces_every_added_row_is_the_mean_of_all():
    embedding = torch.tensor([[2.0, 0.0], [0.0, 4.0], [9.0, 9.0]])
    model = _Untied(embedding, embedding.clone(), torch.zeros(3))
    init_added_rows(model, first=2, stop=3)
    torch.testing.assert_close(model.embed.weight[2], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(model.head.weight[2], torch.tensor([1.0, 2.0]))
