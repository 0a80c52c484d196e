"""A weighted mix of reward functions: ``reward = sum_i w_i * f_i``."""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, Iterator, Mapping, Sequence

import torch

from grpo_lab.errors import ConfigError, RewardFunctionError
from grpo_lab.rewards.registry import RewardFn, resolve_reward

FAULT_POLICIES = ("error", "skip", "zero")
EMPTY_WEIGHTS = (
    "reward.weights is empty; name at least one reward function, e.g. reward=empty "
    "+reward.functions.mine=my_pkg.rewards:my_reward +reward.weights.mine=1"
)


class RewardMix:
    """Scores completions with several functions and combines them by weight.

    ``None`` from a function means "not applicable": it counts as 0 in the total and
    is left out of that function's mean (TRL's convention, which uses NaN + nansum).
    """

    def __init__(self, weights: Mapping[str, float], import_paths: Mapping[str, str] | None = None,
                 prebuilt: Mapping[str, RewardFn] | None = None, on_fault: str = "error"):
        """``prebuilt``: reward callables already constructed by name (e.g. learned
        reward models); they take precedence over the registry. ``on_fault``: what a
        faulty score does (see :meth:`_score`)."""
        if not weights:
            raise ConfigError(EMPTY_WEIGHTS)
        if on_fault not in FAULT_POLICIES:
            raise ConfigError(f"reward.on_fault={on_fault!r}; allowed: {', '.join(FAULT_POLICIES)}")
        self.on_fault = on_fault
        self.weights = {name: float(w) for name, w in weights.items()}
        prebuilt = dict(prebuilt or {})
        import_paths = dict(import_paths or {})
        # Where each function comes from, for the printed mix.
        self.sources = {
            name: getattr(prebuilt[name], "source", "prebuilt") if name in prebuilt
            else import_paths.get(name, "built in")
            for name in self.weights
        }
        self.functions: dict[str, RewardFn] = {
            name: prebuilt[name] if name in prebuilt else resolve_reward(name, import_paths)
            for name in self.weights
        }
        self.faults: dict[str, int] = {}  # faulty scores of the last call, per function

    @classmethod
    def from_config(cls, reward_cfg: Any, device: Any, dtype: Any, sum_fn: Any = None) -> "RewardMix":
        """The mix of a ``reward`` config: registry and import-path functions plus its
        reward models on their device (``sum_fn``: sums over processes, for the models'
        running normalization)."""
        from grpo_lab.rewards.reward_model import build_reward_models

        return cls(reward_cfg.weights, reward_cfg.functions, build_reward_models(reward_cfg, device, dtype, sum_fn),
                   on_fault=reward_cfg.on_fault)

    def describe(self) -> str:
        """The mix in one line: ``reward = 1.0 x correctness (built in) + ...``."""
        terms = [f"{w:g} x {name} ({self.sources[name]})" for name, w in self.weights.items()]
        return "reward = " + " + ".join(terms)

    def check_columns(self, columns: Sequence[str], task: str) -> None:
        """Fails, naming the function and the column, when a function's required keyword
        argument (``answer``, ``reference``) is not a column of the task: a wrong mix
        for the task, found before any model is loaded rather than as a fault mid-run."""
        for name, fn in self.functions.items():
            try:
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):  # builtins and some callables have none
                continue
            for p in params:
                required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                if required and p.name not in ("prompts", "completions") and p.name not in columns:
                    raise ConfigError(
                        f"reward function {name!r} needs the column {p.name!r}, which task {task!r} "
                        f"lacks (columns: {', '.join(columns)}); choose a reward for this task"
                    )

    def inputs(self) -> dict[str, list[str]]:
        """Per reward model, the texts of its last call (what it saw)."""
        return {name: fn.last_texts for name, fn in self.functions.items() if hasattr(fn, "last_texts")}

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Scores without updating any function's state (held-out evaluation)."""
        stateful = [fn for fn in self.functions.values() if hasattr(fn, "frozen")]
        for fn in stateful:
            fn.frozen = True
        try:
            yield
        finally:
            for fn in stateful:
                fn.frozen = False

    @contextlib.contextmanager
    def held_out(self) -> Iterator[None]:
        """Scores as held-out evaluation does: frozen, and reward models' raw scores, so
        every evaluation of a run is on one scale (their running normalization follows
        the training batches: none at step 0, the moments of training so far later)."""
        raw = [fn for fn in self.functions.values() if hasattr(fn, "raw")]
        with self.frozen():
            for fn in raw:
                fn.raw = True
            try:
                yield
            finally:
                for fn in raw:
                    fn.raw = False

    def state_dict(self) -> dict[str, Any]:
        """State of the functions that keep one (reward models' running statistics)."""
        return {name: fn.state_dict() for name, fn in self.functions.items() if hasattr(fn, "state_dict")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, fn_state in state.items():
            if name in self.functions and hasattr(self.functions[name], "load_state_dict"):
                self.functions[name].load_state_dict(fn_state)

    def _fault(self, name: str, index: int, what: str, completion: Any) -> float | None:
        if self.on_fault == "error":
            raise RewardFunctionError(
                f"reward function {name!r} {what} for sample {index} ({str(completion)[:80]!r}); "
                "set reward.on_fault=skip or zero to go on"
            )
        self.faults[name] = self.faults.get(name, 0) + 1
        return None if self.on_fault == "skip" else 0.0  # None: "not applicable"

    def _score(self, name: str, fn: RewardFn, prompts: list[Any], completions: list[Any],
               columns: Mapping[str, Sequence[Any]]) -> list[float]:
        """One function's scores, NaN for "not applicable". A raising function is
        re-run sample by sample to find the culprit; a raise, NaN or inf score is an
        error (``on_fault=error``), "not applicable" (``skip``) or 0 (``zero``)."""
        n = len(completions)
        try:
            scores = list(fn(prompts=prompts, completions=completions, **columns))
        except Exception:  # noqa: BLE001 - user code; located per sample below
            scores = []
            for i in range(n):
                single = {k: [v[i]] for k, v in columns.items()}
                try:
                    scores.extend(fn(prompts=[prompts[i]], completions=[completions[i]], **single))
                except Exception as err:  # noqa: BLE001
                    scores.append(self._fault(name, i, f"raised {type(err).__name__}: {err}", completions[i]))
        if len(scores) != n:
            if self.on_fault == "error":
                raise RewardFunctionError(
                    f"reward function {name!r} returned {len(scores)} scores for {n} completions"
                )
            self.faults[name] = self.faults.get(name, 0) + n
            return [math.nan if self.on_fault == "skip" else 0.0] * n
        out = []
        for i, s in enumerate(scores):
            if s is None:
                out.append(math.nan)
                continue
            number = as_number(s)
            if number is None or not math.isfinite(number):
                what = f"returned {s!r}" + (" (not a number)" if number is None else "")
                fixed = self._fault(name, i, what, completions[i])
                out.append(math.nan if fixed is None else fixed)
            else:
                out.append(number)
        return out

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Sequence[Any]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total rewards ``[N]`` and each function's raw scores (NaN where None)."""
        self.faults = {}
        per_function = {
            name: torch.tensor(self._score(name, fn, list(prompts), list(completions), columns),
                               dtype=torch.float32)
            for name, fn in self.functions.items()
        }
        total = torch.zeros(len(completions))
        for name, scores in per_function.items():
            total += self.weights[name] * torch.nan_to_num(scores, nan=0.0)
        return total, per_function


def as_number(score: Any) -> float | None:
    """A score as a float, or None when it is not one number (a string, a list, ...).
    Text that reads as a number is refused too: it means the function returns the wrong
    thing."""
    if isinstance(score, (str, bytes)):
        return None
    try:
        return float(score)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several values
        return None
