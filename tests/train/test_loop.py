from __future__ import annotations

import torch
from torch import nn

from hone.models.strategies import param_groups
from hone.train.callbacks import EarlyStopping, TimeBudget
from hone.train.loop import LoopConfig, fit_loop
from hone.train.optim import class_weights, linear_schedule, make_optimizer


class Line(nn.Module):
    """y = a * x + b: two parameters, so the loop's effect is exact to check."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, batch: dict) -> torch.Tensor:
        return (self.a * batch["x"] + self.b).unsqueeze(1)


def _data(n: int = 64):
    x = torch.linspace(-1, 1, n)
    return x, 3 * x + 1


def _fit(metrics, epochs=10, callbacks=None, lr=0.1):
    model = Line()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = linear_schedule(opt, epochs * 4, 0.0)
    calls = iter(metrics)

    def batches(epoch):
        for i in range(4):
            yield {"x": x[i::4]}, y[i::4], 16

    def evaluate():
        return {"rmse": next(calls), "a": model.a.item()}

    loss = lambda out, t: nn.functional.mse_loss(out[:, 0], t)  # noqa: E731
    cfg = LoopConfig(epochs=epochs, steps_per_epoch=4, metric="rmse", higher_is_better=False, grad_clip=None)
    state = fit_loop(model, batches=batches, evaluate=evaluate, loss_fn=loss, optimizer=opt, scheduler=sched,
                     cfg=cfg, callbacks=callbacks or [])
    return model, state


def test_loop_learns_and_counts() -> None:
    model, state = _fit([1.0 / (i + 1) for i in range(10)], lr=0.3)
    assert abs(model.a.item() - 3) < 0.5 and abs(model.b.item() - 1) < 0.3
    assert state.step == 40 and state.rows_seen == 640 and len(state.history) == 10
    assert state.train_seconds > 0 and state.best_epoch == 10


def test_early_stopping_restores_the_best_weights() -> None:
    model, state = _fit([0.5, 0.2, 0.3, 0.4, 0.35, 0.1, 0.1], callbacks=[EarlyStopping(patience=3)])
    assert state.epoch + 1 == 5 and len(state.history) == 5
    assert state.should_stop and state.best_epoch == 2 and "early stopping" in state.stop_reason
    # the restored weights are the ones evaluated at epoch 2 (recorded in the history)
    assert abs(model.a.item() - state.history[1]["a"]) < 1e-7


def test_time_budget_stops_training() -> None:
    _, state = _fit([1.0] * 50, epochs=50, callbacks=[TimeBudget(1e-9)])
    assert state.step == 1 and "time budget" in state.stop_reason and len(state.history) == 1


def test_a_time_budget_too_short_for_the_plan_fits_the_schedule_to_it() -> None:
    """Steps of ~20 ms, 1,000 planned, a budget of about 30 of them: after the probe the rate's horizon
    is shortened so that it decays to zero by the budget's end, and training stops there."""
    import time

    from hone.train.callbacks import Callback

    class Slow(Callback):
        def on_batch_end(self, state, *, rows, loss):
            time.sleep(0.02)

    budget = TimeBudget(0.7)
    model = Line()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = linear_schedule(opt, 1000, 0.1)

    def batches(epoch):
        for i in range(4):
            yield {"x": x[i::4]}, y[i::4], 16

    rates = []

    class Rate(Callback):
        def on_step_end(self, state):
            rates.append(opt.param_groups[0]["lr"])

    cfg = LoopConfig(epochs=250, steps_per_epoch=4, metric="rmse", higher_is_better=False, grad_clip=None)
    t0 = time.perf_counter()
    state = fit_loop(model, batches=batches, evaluate=lambda: {"rmse": 1.0}, cfg=cfg, optimizer=opt, scheduler=sched,
                     loss_fn=lambda out, t: nn.functional.mse_loss(out[:, 0], t), callbacks=[Slow(), budget, Rate()])
    assert time.perf_counter() - t0 < 1.5
    assert budget.fitted_steps is not None and TimeBudget.PROBE_STEPS < budget.fitted_steps < 60
    assert sched.horizon[0] == budget.fitted_steps and state.step == budget.fitted_steps
    assert "schedule was fitted" in state.stop_reason
    assert rates[-1] < 0.1 * max(rates)  # decayed by the end, not cut while high


def test_class_weights_and_param_groups() -> None:
    w, used = class_weights([50, 50], "auto")
    assert not used and w is None
    w, used = class_weights([50, 50], "balanced")
    assert used and torch.allclose(w, torch.ones(2))
    net = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    opt = make_optimizer(param_groups(net, lr=1e-5, head_lr=1e-3, weight_decay=0.1, pretrained_prefixes=[]))
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.1] and all(g["lr"] == 1e-3 for g in opt.param_groups)


def test_eval_every_steps_and_progress_bar(capsys) -> None:
    from hone.train.callbacks import ProgressBar

    model = Line()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = LoopConfig(epochs=2, steps_per_epoch=4, metric="rmse", higher_is_better=False, eval_every_steps=3,
                     loss_log_every=1)
    state = fit_loop(model, batches=lambda e: (({"x": x[i::4]}, y[i::4], 16) for i in range(4)),
                     evaluate=lambda: {"rmse": 1.0}, loss_fn=lambda o, t: nn.functional.mse_loss(o[:, 0], t),
                     optimizer=opt, scheduler=linear_schedule(opt, 8, 0.25), cfg=cfg, callbacks=[ProgressBar(True)])
    assert [h["step"] for h in state.history] == [3, 6, 8]  # every 3 steps, and at the very end
    err = capsys.readouterr().err
    assert "8/8" in err and "loss=" in err and "rows_s=" in err


def test_gradient_accumulation_matches_one_big_batch() -> None:
    x, y = _data(32)
    results = []
    for accum, parts in ((1, 1), (4, 4)):
        model = Line()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        cfg = LoopConfig(epochs=1, steps_per_epoch=1, metric="rmse", higher_is_better=False, grad_clip=None,
                         grad_accum_steps=accum)
        state = fit_loop(model, batches=lambda e, p=parts: (({"x": x[i::p]}, y[i::p], 32 // p) for i in range(p)),
                         evaluate=lambda: {"rmse": 0.0}, loss_fn=lambda o, t: nn.functional.mse_loss(o[:, 0], t),
                         optimizer=opt, scheduler=linear_schedule(opt, 1, 0.0), cfg=cfg)
        results.append((model.a.item(), model.b.item(), state.step, state.rows_seen))
    assert results[0][2] == results[1][2] == 1 and results[0][3] == results[1][3] == 32
    assert abs(results[0][0] - results[1][0]) < 1e-6 and abs(results[0][1] - results[1][1]) < 1e-6


def test_leftover_micro_batches_make_a_step_of_their_own() -> None:
    # Regression: with 3 batches and --grad-accum 2, the third batch's gradient was carried into the
    # next epoch (or lost); with fewer batches than the accumulation count there were zero steps.
    x, y = _data(48)
    parts = [(x[i::3], y[i::3]) for i in range(3)]
    model = Line()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = LoopConfig(epochs=2, steps_per_epoch=2, metric="rmse", higher_is_better=False, grad_clip=None,
                     grad_accum_steps=2)
    falling = iter([2.0, 1.0])  # each evaluation is a new best: the final weights are kept
    state = fit_loop(
        model,
        batches=lambda e: (({"x": px}, py, 16) for px, py in parts),
        evaluate=lambda: {"rmse": next(falling)},
        loss_fn=lambda o, t: nn.functional.mse_loss(o[:, 0], t),
        optimizer=opt,
        scheduler=linear_schedule(opt, 100, 0.0),
        cfg=cfg,
    )
    assert state.step == 4 and all(p.grad is None for p in model.parameters())
    # the same updates by hand: mean gradient of batches 1+2, then batch 3 alone, twice
    ref = Line()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    sched = linear_schedule(ref_opt, 100, 0.0)
    for _ in range(2):
        for group in (parts[:2], parts[2:]):
            loss = sum(nn.functional.mse_loss(ref({"x": px})[:, 0], py) for px, py in group) / len(group)
            loss.backward()
            ref_opt.step()
            sched.step()
            ref_opt.zero_grad()
    assert abs(model.a.item() - ref.a.item()) < 1e-6 and abs(model.b.item() - ref.b.item()) < 1e-6

    one = Line()
    opt1 = torch.optim.SGD(one.parameters(), lr=0.1)
    cfg1 = LoopConfig(epochs=1, steps_per_epoch=1, metric="rmse", higher_is_better=False, grad_accum_steps=4)
    s1 = fit_loop(one, batches=lambda e: (({"x": px}, py, 16) for px, py in parts[:2]), evaluate=lambda: {"rmse": 0.0},
                  loss_fn=lambda o, t: nn.functional.mse_loss(o[:, 0], t), optimizer=opt1,
                  scheduler=linear_schedule(opt1, 1, 0.0), cfg=cfg1)
    assert s1.step == 1 and one.a.item() != 0.0


def test_a_nan_first_metric_does_not_freeze_the_best_checkpoint() -> None:
    # Regression: a NaN first validation metric became the best forever.
    model, state = _fit([float("nan"), 0.5, 0.2, 0.3], epochs=4)
    assert state.best_epoch == 3 and state.best_metric == 0.2
    assert abs(model.a.item() - state.history[2]["a"]) < 1e-7


class Noisy(Line):
    """Line with dropout on its input, so that resuming must restore the RNG exactly."""

    def forward(self, batch: dict) -> torch.Tensor:
        return (self.a * nn.functional.dropout(batch["x"], 0.3, self.training) + self.b).unsqueeze(1)


def test_a_saved_loop_state_resumes_exactly(tmp_path) -> None:
    from hone.train.callbacks import Callback
    from hone.train.checkpoint import load_loop_state, save_loop_state
    from hone.train.loop import Loop

    x, y = _data(64)

    def setup():
        torch.manual_seed(1)
        m = Noisy()
        o = torch.optim.AdamW(m.parameters(), lr=0.05)
        return m, o, linear_schedule(o, 12, 0.25)

    def batches(epoch):
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(64, generator=g)
        for i in range(4):
            idx = perm[i * 16:(i + 1) * 16]
            yield {"x": x[idx]}, y[idx], 16

    cfg = LoopConfig(epochs=3, steps_per_epoch=4, metric="rmse", higher_is_better=False)
    metrics = iter([0.5, 0.4, 0.45] * 2)
    evaluate = lambda: {"rmse": next(metrics)}  # noqa: E731
    loss = lambda o, t: nn.functional.mse_loss(o[:, 0], t)  # noqa: E731

    m, o, s = setup()
    full = fit_loop(m, batches=batches, evaluate=evaluate, loss_fn=loss, optimizer=o, scheduler=s, cfg=cfg)
    expected = (m.a.item(), m.b.item(), full.step, full.best_epoch)

    class StopAndSave(Callback):
        def on_fit_start(self, state, *, loop=None):
            self.loop = loop

        def on_batch_end(self, state, *, rows, loss):
            if state.step == 6:  # mid-epoch 2
                save_loop_state(tmp_path / "state", self.loop, state)
                state.should_stop = True

    metrics = iter([0.5, 0.4, 0.45])
    m, o, s = setup()
    fit_loop(m, batches=batches, evaluate=lambda: {"rmse": next(metrics, 0.45)}, loss_fn=loss, optimizer=o,
             scheduler=s, cfg=cfg, callbacks=[StopAndSave()])
    torch.manual_seed(99)  # whatever happens in between, the saved RNG state is what counts
    m, o, s = setup()
    loop = Loop(m, o, s, loss, None, cfg, {})  # type: ignore[arg-type]
    state = load_loop_state(tmp_path / "state", loop)
    assert state.step == 6 and state.epoch == 1 and state.batch_in_epoch == 2
    metrics = iter([0.4, 0.45])
    resumed = fit_loop(m, batches=batches, evaluate=evaluate, loss_fn=loss, optimizer=o, scheduler=s, cfg=cfg,
                       state=state, best=loop.best)
    assert (m.a.item(), m.b.item(), resumed.step, resumed.best_epoch) == expected


def test_a_state_saved_at_an_epoch_end_resumes_with_the_next_epoch(tmp_path) -> None:
    from hone.train.callbacks import Callback
    from hone.train.checkpoint import load_loop_state, save_loop_state
    from hone.train.loop import Loop

    saved = {}

    class SaveAfterFirstEpoch(Callback):
        def on_fit_start(self, state, *, loop=None):
            self.loop = loop

        def on_epoch_end(self, state):
            if state.epoch == 0:
                save_loop_state(tmp_path / "s", self.loop, state)
                saved["evals"] = len(state.history)

    _fit([0.5, 0.4, 0.3], epochs=3, callbacks=[SaveAfterFirstEpoch()])
    model = Line()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = LoopConfig(epochs=3, steps_per_epoch=4, metric="rmse", higher_is_better=False, grad_clip=None)
    sched = linear_schedule(opt, 12, 0.0)
    loop = Loop(model, opt, sched, None, None, cfg, {})  # type: ignore[arg-type]
    state = load_loop_state(tmp_path / "s", loop)
    x, y = _data()
    calls = iter([0.4, 0.3])
    state = fit_loop(model, batches=lambda e: (({"x": x[i::4]}, y[i::4], 16) for i in range(4)),
                     evaluate=lambda: {"rmse": next(calls)}, loss_fn=lambda o, t: nn.functional.mse_loss(o[:, 0], t),
                     optimizer=opt, scheduler=sched, cfg=cfg, state=state, best=loop.best)
    # epochs 2 and 3 ran once each: one evaluation per epoch, none repeated for epoch 1
    assert saved["evals"] == 1 and [h["epoch"] for h in state.history] == [1, 2, 3] and state.step == 12
