import numpy as np
import torch

from src.models.malis import crop_weights, malis_loss

ROW = [[0, -1]]  # the pair (p, p - 1) along a row


def test_hand_worked_row():
    # pixels: cell 1, cell 1, membrane, cell 2; the affinity at p is for the pair (p, p - 1)
    cells = np.array([[1, 1, 0, 2]])
    affinity = np.array([[[0.0, 0.9, 0.3, 0.6]]], np.float32)
    valid = np.array([[[False, True, True, True]]])
    positive, negative = crop_weights(affinity, cells, valid, ROW)
    # one pair inside cell 1, joined by its only edge
    np.testing.assert_array_equal(positive, [[[0, 1, 0, 0]]])
    # 0.6 first joins the membrane (no cell pixels) to cell 2: no pair; then 0.3 joins cell 1 (2 pixels) to it
    np.testing.assert_array_equal(negative, [[[0, 0, 2, 0]]])


def test_maximin_edge_takes_the_pairs_it_decides():
    # one cell of three pixels: the weak link decides both pairs across it, the strong one only its own
    cells = np.array([[1, 1, 1]])
    affinity = np.array([[[0.0, 0.9, 0.2]]], np.float32)
    valid = np.array([[[False, True, True]]])
    positive, negative = crop_weights(affinity, cells, valid, ROW)
    np.testing.assert_array_equal(positive, [[[0, 1, 2]]])
    assert not negative.any()


def test_counts_every_pair_once():
    rng = np.random.default_rng(0)
    cells = np.zeros((40, 40), int)
    cells[2:18, 2:18], cells[2:18, 22:38], cells[22:38, 5:35] = 1, 2, 3
    offsets = [[-1, 0], [0, -1]]
    affinity = rng.random((2, 40, 40)).astype(np.float32)
    valid = np.ones((2, 40, 40), bool)
    valid[0, 0, :], valid[1, :, 0] = False, False
    positive, negative = crop_weights(affinity, cells, valid, offsets)
    sizes = np.bincount(cells.ravel())[1:]
    assert positive.sum() == (sizes * (sizes - 1) // 2).sum()
    assert negative.sum() == (sizes.sum() ** 2 - (sizes**2).sum()) // 2
    assert not positive[~valid].any() and not negative[~valid].any()


def test_loss_pulls_the_weak_link_up_and_the_bridge_down():
    cells = np.array([[[1, 1, 1, 0, 2]]])
    logits = torch.tensor([[[[0.0, 2.0, -1.0, 1.0, 1.5]]]], requires_grad=True)
    mask = torch.tensor([[[[False, True, True, True, True]]]])
    loss = malis_loss(logits, cells, mask, ROW)
    loss.backward()
    grad = logits.grad[0, 0, 0]
    assert loss.item() > 0
    assert grad[2] < 0  # the weak link inside cell 1 (two pairs decided): raise it
    # across: 0.82 (membrane to cell 2) joins no cell pixels; 0.73 then joins cell 1 to cell 2 (three pairs)
    assert grad[3] > 0
    assert grad[4] == 0 and grad[0] == 0
