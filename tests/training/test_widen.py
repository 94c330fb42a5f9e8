"""Net2WiderNet for fer_vgg: the wider model starts as the same function and its copies can diverge."""

import pytest
import torch

from training.models import create_model
from training.widen import widen_state_dict


def _trained_like(width):
    """A narrow model with non-trivial BatchNorm statistics, as a trained one has."""
    model = create_model("fer_vgg", verbose=False, width=width, dropout=0.3)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 48, 48) * 2 + 1)
    return model.eval()


def test_wider_model_computes_the_same_logits():
    torch.manual_seed(0)
    narrow = _trained_like(8)
    wide = create_model("fer_vgg", verbose=False, width=12, dropout=0.3).eval()
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, seed=1))
    x = torch.randn(16, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(wide(x), narrow(x), atol=1e-4)
        assert not torch.allclose(wide.stages[0][0][0].weight[8:], torch.zeros(4, 1, 3, 3))


def test_copied_channels_get_different_gradients():
    """Equal read factors would tie a channel's copies together for good; unequal ones let them split."""
    torch.manual_seed(0)
    narrow = _trained_like(4)
    wide = create_model("fer_vgg", verbose=False, width=8, dropout=0.0)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, seed=2))
    conv = wide.stages[0][0][0]
    j = 4  # the first added channel, and the original it copies
    i = int(torch.nonzero((conv.weight[:4] == conv.weight[j]).all(dim=(1, 2, 3)))[0])
    wide.eval()  # BN in eval mode: the copies' activations stay identical, only their read factors differ
    loss = torch.nn.functional.cross_entropy(wide(torch.randn(8, 1, 48, 48)), torch.arange(8) % 7)
    loss.backward()
    assert not torch.allclose(conv.weight.grad[j], conv.weight.grad[i])


def test_other_architectures_and_shapes_are_refused():
    narrow = create_model("fer_vgg", verbose=False, width=8).state_dict()
    with pytest.raises(ValueError, match="fer_vgg only"):
        widen_state_dict(narrow, create_model("resnet18", verbose=False, width=8))
    with pytest.raises(ValueError, match="hidden size"):
        widen_state_dict(narrow, create_model("fer_vgg", verbose=False, width=12, hidden=64))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state_dict(
            create_model("fer_vgg", verbose=False, width=12).state_dict(),
            create_model("fer_vgg", verbose=False, width=8),
        )
