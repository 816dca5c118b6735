from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fulcrum.config import TrainConfig
from fulcrum.errors import ConfigError, TrainingError
from fulcrum.models import MLP
from fulcrum.training import Callback, Trainer, load_checkpoint


def blobs(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, d)) + y[:, None] * 1.5).astype(np.float32)
    return (X[:300], y[:300]), (X[300:], y[300:])


def run(cfg, **kw):
    train, val = blobs()
    torch.manual_seed(cfg.seed)
    model = MLP(6, 3, cfg.hidden_sizes, cfg.dropout)
    res = Trainer(cfg, **kw).fit(model, train, val, loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long,
                                 metric_fn=lambda o, y: {"accuracy": float((o.argmax(1) == y).float().mean())})
    return model, res


CFG = TrainConfig(epochs=12, batch_size=32, lr=1e-2, hidden_sizes=(16,), progress=False, device="cpu")


def test_learns_and_keeps_history():
    model, res = run(CFG)
    assert len(res.history) == 12
    assert res.history[-1]["val_accuracy"] > 0.8
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_same_seed_same_result_on_cpu():
    _, a = run(CFG)
    _, b = run(CFG)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    _, c = run(CFG.replace(seed=1))
    assert [h["val_loss"] for h in a.history] != [h["val_loss"] for h in c.history]


def test_early_stopping_restores_best_weights():
    # lr so high that validation loss gets worse after the first epochs
    cfg = CFG.replace(epochs=60, lr=0.5, optimizer="sgd", patience=3, lr_schedule="constant", momentum=0.0)
    model, res = run(cfg)
    assert res.stopped_early and len(res.history) < 60
    best = min(h["val_loss"] for h in res.history)
    assert res.history[res.best_epoch]["val_loss"] == best
    train, val = blobs()
    model.eval()
    with torch.no_grad():
        now = float(nn.CrossEntropyLoss()(model(torch.as_tensor(val[0])), torch.as_tensor(val[1])))
    assert now == pytest.approx(best, rel=1e-5)


class Crash(Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    cfg = CFG.replace(epochs=10, lr_schedule="cosine", dropout=0.2)
    ref_model, ref = run(cfg)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, checkpoint_dir=tmp_path, callbacks=[Crash(4)])
    assert load_checkpoint(tmp_path)["epoch"] == 4
    seen = Seen()
    model, res = run(cfg, checkpoint_dir=tmp_path, resume=True, callbacks=[seen])
    assert res.resumed_from_epoch == 5
    assert seen.epochs == [5, 6, 7, 8, 9]  # the epochs before the checkpoint were not run again
    assert [h["attempt"] for h in res.history] == [1] * 5 + [2] * 5
    assert [h["val_loss"] for h in res.history] == [h["val_loss"] for h in ref.history]
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)


class Seen(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.epochs.append(epoch)


def test_second_resume_counts_attempts_and_still_equals_uninterrupted(tmp_path):
    cfg = CFG.replace(epochs=6, dropout=0.2)
    _, ref = run(cfg)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, checkpoint_dir=tmp_path, callbacks=[Crash(1)])
    with pytest.raises(KeyboardInterrupt):
        run(cfg, checkpoint_dir=tmp_path, resume=True, callbacks=[Crash(3)])
    seen = Seen()
    _, res = run(cfg, checkpoint_dir=tmp_path, resume=True, callbacks=[seen])
    assert seen.epochs == [4, 5] and res.resumed_from_epoch == 4 and res.attempt == 3
    assert [h["attempt"] for h in res.history] == [1, 1, 2, 2, 3, 3]
    assert [h["val_loss"] for h in res.history] == [h["val_loss"] for h in ref.history]


def test_without_resume_an_existing_checkpoint_is_ignored(tmp_path):
    cfg = CFG.replace(epochs=4)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, checkpoint_dir=tmp_path, callbacks=[Crash(1)])
    seen = Seen()
    _, res = run(cfg, checkpoint_dir=tmp_path, callbacks=[seen])
    assert seen.epochs == [0, 1, 2, 3] and res.resumed_from_epoch is None
    assert [h["attempt"] for h in res.history] == [1] * 4


def test_divergence_is_reported():
    train, val = blobs()
    X = train[0].copy()
    X[0, 0] = np.nan
    with pytest.raises(TrainingError, match="diverged"):
        Trainer(CFG).fit(MLP(6, 3, (8,)), (X, train[1]), val, loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long)


def test_cuda_request_without_cuda_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        Trainer(CFG.replace(device="cuda"))


@pytest.mark.gpu
def test_trains_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model, res = run(CFG.replace(device="cuda"))
    assert res.history[-1]["val_accuracy"] > 0.8


def test_augment_hook_sees_every_training_batch_only():
    seen = []

    def augment(xb):
        seen.append(xb.shape[0])
        return xb + 0.01 * torch.randn_like(xb)

    train, val = blobs()
    torch.manual_seed(0)
    res = Trainer(CFG.replace(epochs=2)).fit(MLP(6, 3, (8,)), train, val, loss_fn=nn.CrossEntropyLoss(),
                                             target_dtype=torch.long, augment=augment)
    assert sum(seen) == 2 * len(train[0])  # training batches only, not validation
    assert len(res.history) == 2


def test_warmup_cosine_raises_lr_per_step_then_decays_to_zero():
    # 300 rows / 32 = 10 steps per epoch; warmup over 25 steps (2.5 epochs), cosine to 0 over 12 epochs
    model, res = run(CFG.replace(lr_schedule="warmup_cosine", warmup_steps=25))
    lrs = [h["lr"] for h in res.history]
    # after the 10 steps of epoch 1 the scheduler is at step 10: factor (10 + 1) / 25 x cosine at 10 / 120
    assert lrs[0] == pytest.approx(1e-2 * 11 / 25 * 0.5 * (1 + np.cos(np.pi * 10 / 120)))
    assert lrs[0] < lrs[1] < lrs[2] and max(lrs) <= 1e-2
    assert lrs[2] > lrs[3] > lrs[-2] > lrs[-1] and lrs[-1] < 1e-2 * 1e-3
    assert res.history[-1]["val_accuracy"] > 0.8


def test_grad_clip_bounds_each_steps_update():
    train, _ = blobs()

    def one_step(clip):
        cfg = CFG.replace(epochs=1, batch_size=300, lr=1.0, optimizer="sgd", momentum=0.0, weight_decay=0.0,
                          lr_schedule="constant", dropout=0.0, grad_clip=clip)
        torch.manual_seed(0)
        model = MLP(6, 3, cfg.hidden_sizes, cfg.dropout)
        before = torch.cat([q.detach().flatten().clone() for q in model.parameters()])
        Trainer(cfg).fit(model, train, None, loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long)
        return float((torch.cat([q.detach().flatten() for q in model.parameters()]) - before).norm())

    assert one_step(None) > 0.1
    assert one_step(0.01) == pytest.approx(0.01, rel=1e-3)


def test_bad_warmup_or_grad_clip_is_refused():
    with pytest.raises(ConfigError, match="grad_clip"):
        CFG.replace(grad_clip=0.0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        CFG.replace(warmup_steps=-1)
