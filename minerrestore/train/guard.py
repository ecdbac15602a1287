"""Loss guard of a training run: warn when a loss leaves its running range, stop when it diverges.

Every iteration the weighted loss terms are compared with their running level (an
exponential average that a spike does not drag along). A value more than
:data:`WARN_FACTOR` times that level is a warning (once, until the loss comes back);
a non-finite value, or one more than :data:`STOP_FACTOR` times the level for
:data:`STOP_PATIENCE` iterations in a row, stops the run with a checkpoint and a message
that names the loss and the iteration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

WARMUP = 20
"""Iterations that only set the running level (early losses move fast)."""
WARN_FACTOR = 10.0
"""A loss above this many times its running level is out of range: warned about."""
STOP_FACTOR = 100.0
"""A loss above this many times its running level for :data:`STOP_PATIENCE` iterations has diverged."""
STOP_PATIENCE = 10
"""Consecutive iterations above :data:`STOP_FACTOR` that stop the run."""
FLOOR = 0.01
"""Levels below this count as this, so a loss near zero may rise to a small value unwarned."""
DECAY = 0.95
"""Decay of the running level (in-range values only)."""


@dataclass
class GuardEvent:
    """What the guard saw at one iteration: ``kind`` is ``warn`` or ``stop``."""

    kind: str
    loss: str
    value: float
    level: float

    def message(self, iteration: int) -> str:
        """One line naming the loss, its value, its running level and the iteration."""
        if self.kind == "stop" and not math.isfinite(self.value):
            return f"loss {self.loss} is {self.value} at iteration {iteration}: training diverged"
        what = "diverged" if self.kind == "stop" else "left its running range"
        return f"loss {self.loss} {self.value:.4g} at iteration {iteration} {what} (running level {self.level:.4g})"


@dataclass
class LossGuard:
    """Running levels of named losses and the warnings and stops they call for."""

    levels: dict[str, float] = field(default_factory=dict)
    seen: int = 0
    warned: set[str] = field(default_factory=set)
    high: dict[str, int] = field(default_factory=dict)

    def check(self, losses: Mapping[str, float]) -> list[GuardEvent]:
        """Update the levels with one iteration's losses; the warnings (new ones only) and stops."""
        self.seen += 1
        events = []
        for name, value in losses.items():
            if not math.isfinite(value):
                events.append(GuardEvent("stop", name, value, self.levels.get(name, math.nan)))
                continue
            level = self.levels.get(name)
            if level is None or self.seen <= WARMUP:
                self.levels[name] = value if level is None else DECAY * level + (1 - DECAY) * value
                continue
            base = max(level, FLOOR)
            if value > WARN_FACTOR * base:
                if name not in self.warned:
                    self.warned.add(name)
                    events.append(GuardEvent("warn", name, value, level))
                self.high[name] = self.high.get(name, 0) + 1 if value > STOP_FACTOR * base else 0
                if self.high[name] >= STOP_PATIENCE:
                    events.append(GuardEvent("stop", name, value, level))
                continue
            self.warned.discard(name)
            self.high[name] = 0
            self.levels[name] = DECAY * level + (1 - DECAY) * value
        return events


__all__ = ["STOP_FACTOR", "STOP_PATIENCE", "WARN_FACTOR", "GuardEvent", "LossGuard"]
