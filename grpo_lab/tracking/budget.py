"""What a run has spent so far: the x axes on which arms are compared at equal budget.

GRPO and PPO do different amounts of work per step (PPO runs a critic and several
epochs), so "per step" alone flatters the costlier arm. Every step's record carries the
running totals, each usable as a chart's x axis (W&B ``define_metric``,
``grpo-lab-compare --x``):

- ``budget/samples``: completions generated;
- ``budget/generated_tokens``: completion tokens generated (EOS included, padding not);
- ``budget/input_tokens``: prompt tokens plus completion tokens of every row sampled
  (padding not), TRL's running ``num_tokens``, also logged under that name;
- ``budget/trained_tokens``: completion tokens that went through the policy loss,
  counted once per epoch (``num_iterations``); 0 for critic warm-up steps;
- ``budget/optimizer_steps``: policy optimizer steps applied (skipped non-finite ones
  not counted; a critic's own steps not counted);
- ``budget/wall_s``: seconds spent in training steps (rollout, rewards, update, critic),
  not in held-out evaluation or checkpointing, so evaluating more often does not move
  the axis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

PREFIX = "budget/"


@dataclass
class Budget:
    samples: int = 0
    generated_tokens: int = 0
    input_tokens: int = 0
    trained_tokens: int = 0
    optimizer_steps: int = 0
    wall_s: float = 0.0

    def add(self, *, samples: int, generated_tokens: int, prompt_tokens: int, trained_tokens: int,
            optimizer_steps: int, wall_s: float) -> dict[str, float]:
        """Adds one step's spending; returns the totals as ``budget/...`` metrics."""
        self.samples += samples
        self.generated_tokens += generated_tokens
        self.input_tokens += prompt_tokens + generated_tokens
        self.trained_tokens += trained_tokens
        self.optimizer_steps += optimizer_steps
        self.wall_s += wall_s
        return self.metrics()

    def metrics(self) -> dict[str, float]:
        return {f"{PREFIX}{name}": float(value) for name, value in asdict(self).items()}

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float]) -> None:
        for name, value in state.items():
            setattr(self, name, type(getattr(self, name))(value))


BUDGET_AXES = tuple(f.name for f in fields(Budget))
