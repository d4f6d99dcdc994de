import pytest
import torch

from src.data.normalize import normalize_slices
from src.data.synthetic import synthetic_stack
from src.models.module import SegmentationModule
from src.utils.errors import UserError

NET = {"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 8}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def _batch(size=64, n=4):
    images, labels = synthetic_stack(num_slices=n, size=size, num_cells=8, seed=0)
    return {
        "image": torch.from_numpy(normalize_slices(images))[:, None],
        "label": torch.from_numpy((labels > 0).astype("int64")),
    }


def test_overfits_one_batch():
    torch.manual_seed(0)
    module = SegmentationModule(net=NET, optimizer=ADAM)
    optimizer = module.configure_optimizers()
    batch = _batch()
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(module.net(batch["image"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    module.eval()
    with torch.no_grad():
        prob = module.interior_probability(batch["image"])
    assert ((prob > 0.5).long() == batch["label"]).float().mean() > 0.85


def test_valid_padding_crops_the_label_to_the_output():
    module = SegmentationModule(net={**NET, "padding": "valid"}, optimizer=ADAM, channels_last=False)
    batch = _batch(size=76, n=2)  # valid input 76 -> output 36 for depth 2
    logits = module.net(batch["image"])
    assert logits.shape[-2:] == (36, 36)
    module.log = lambda *a, **k: None  # no trainer attached
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    # Whole-slice forward keeps the input size, for evaluation.
    assert module(batch["image"]).shape[-2:] == (76, 76)


def test_non_finite_loss_stops_with_the_step():
    module = SegmentationModule(net=NET, optimizer=ADAM)
    module.log = lambda *a, **k: None
    batch = _batch(n=2)
    batch["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="global step 0") as raised:
        module.training_step(batch, 0)
    assert isinstance(raised.value, UserError)  # the command line prints it as one line, without a traceback


def test_an_ensemble_fits_each_member_on_the_labels_and_predicts_their_mean_probability():
    torch.manual_seed(0)
    net = {**NET, "_target_": "src.models.unet.UNetEnsemble", "members": 2}
    module = SegmentationModule(net=net, optimizer=ADAM, loss={"_target_": "src.models.losses.CrossEntropy"})
    module.log = lambda *a, **k: None
    batch = _batch(n=2)
    first, second = module.net.members
    # Training: the loss is the mean of the members' own losses on the same labels.
    loss = module.training_step(batch, 0)
    separate = [torch.nn.functional.cross_entropy(m(batch["image"]), batch["label"]) for m in (first, second)]
    assert loss.item() == pytest.approx(sum(separate).item() / 2, rel=1e-5)
    assert not torch.allclose(separate[0], separate[1])  # initialised apart
    # Evaluation: softmax of the output is the mean of the members' probabilities.
    module.eval()
    with torch.no_grad():
        prob = module.interior_probability(batch["image"])
        mean = sum(m(batch["image"]).softmax(dim=1)[:, 1] for m in (first, second)) / 2
    assert prob.shape == batch["label"].shape
    assert torch.allclose(prob, mean, atol=1e-5)


def test_an_ensemble_with_split_batch_fits_each_member_on_its_own_crops_and_labels():
    torch.manual_seed(0)
    net = {**NET, "_target_": "src.models.unet.UNetEnsemble", "members": 2, "split_batch": True}
    module = SegmentationModule(net=net, optimizer=ADAM, loss={"_target_": "src.models.losses.CrossEntropy"})
    module.log = lambda *a, **k: None
    batch = _batch(n=4)
    image, label = batch["image"], batch["label"]
    first, second = module.net.members
    loss = module.training_step(batch, 0)
    own = [
        torch.nn.functional.cross_entropy(m(image[i : i + 2]), label[i : i + 2]) for m, i in ((first, 0), (second, 2))
    ]
    assert loss.item() == pytest.approx(sum(own).item() / 2, rel=1e-5)


@pytest.mark.parametrize("kind", ["dice", "dice_malis"])
def test_an_affinity_network_trains_classes_and_affinities_and_predicts_both(kind):
    torch.manual_seed(0)
    offsets = [[-1, 0], [0, -1], [-4, 0], [0, -4]]
    net = {**NET, "num_classes": 2 + len(offsets)}
    module = SegmentationModule(net=net, optimizer=ADAM, affinities={"offsets": offsets, "loss": kind})
    assert module.offsets == tuple(map(tuple, offsets)) and module.classes == ["membrane", "interior"]
    module.log = lambda *args, **kwargs: None  # no trainer to log to
    optimizer = module.configure_optimizers()
    batch = _batch()
    losses = []
    for _ in range(30):
        loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    module.eval()
    with torch.no_grad():
        probs = module.probabilities(batch["image"])
    assert probs.shape == (4, 2 + len(offsets), 64, 64)
    assert torch.allclose(probs[:, :2].sum(1), torch.ones(4, 64, 64))  # softmax over the classes only
    assert torch.equal(module.class_probabilities(batch["image"]), probs[:, :2])
    with pytest.raises(UserError, match="output channels"):
        SegmentationModule(net=NET, optimizer=ADAM, affinities={"offsets": offsets})


def test_scores_gathered_by_their_metrics_are_not_all_reduced_again():
    """The epoch's class and ISBI scores are summed over processes in compute(); a second all-reduce by Lightning's
    sync_dist is refused by NCCL for these CPU values (seen on a GPU with trainer=ddp), so none is asked for."""
    logged = {}

    class Recording(SegmentationModule):
        def log(self, name, value, **kwargs):
            logged[name] = kwargs.get("sync_dist", False)

    module = Recording(net=NET, optimizer=ADAM)
    batch = {**_batch(), "slice": torch.arange(4)}
    with torch.no_grad():
        module.validation_step(batch, 0)
    module._log_eval_epoch("val")
    module.on_train_epoch_end()
    epoch_scores = {name for name in logged if name != "val/loss"}
    assert {"val/dice/mean", "val/vrand", "train/accuracy"} <= epoch_scores
    assert not any(logged[name] for name in epoch_scores)
    assert logged["val/loss"]  # a per-batch value, averaged over processes by Lightning
