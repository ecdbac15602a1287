"""The loss guard: warnings when a loss leaves its running range, stops on NaN or divergence (issue 20)."""

from __future__ import annotations

import math

from minerrestore.train.guard import STOP_PATIENCE, WARMUP, LossGuard


def _steady(guard: LossGuard, iterations: int) -> None:
    for step in range(iterations):
        assert guard.check({"g_l1": 0.04 + 0.001 * (step % 3), "d_gan": 1.0}) == []


def test_a_spike_is_warned_once_and_a_sustained_jump_stops() -> None:
    guard = LossGuard()
    _steady(guard, WARMUP + 5)
    events = guard.check({"g_l1": 0.5, "d_gan": 1.0})  # 12x: out of range, not diverged
    assert [(e.kind, e.loss) for e in events] == [("warn", "g_l1")]
    assert "g_l1 0.5 at iteration 26 left its running range" in events[0].message(26)
    assert guard.check({"g_l1": 0.6, "d_gan": 1.0}) == []  # warned once
    _steady(guard, 3)  # back in range: the level was not dragged up
    assert guard.levels["g_l1"] < 0.05
    kinds = [[e.kind for e in guard.check({"g_l1": 10.0, "d_gan": 1.0})] for _ in range(STOP_PATIENCE)]
    assert kinds[0] == ["warn"] and kinds[-1] == ["stop"] and all(k == [] for k in kinds[1:-1])


def test_non_finite_stops_at_once_even_while_warming_up() -> None:
    guard = LossGuard()
    events = guard.check({"g_style": math.nan, "d_gan": 1.0})
    assert [(e.kind, e.loss) for e in events] == [("stop", "g_style")]
    assert events[0].message(3) == "loss g_style is nan at iteration 3: training diverged"


def test_small_losses_may_rise_to_small_values() -> None:
    guard = LossGuard()
    for _ in range(WARMUP + 5):
        guard.check({"d_r1": 1e-5})
    assert guard.check({"d_r1": 0.05}) == []  # below the floor times the factor
