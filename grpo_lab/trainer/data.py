"""Seeded, epoch-shuffled prompt batches from a task dataset."""

from __future__ import annotations

from grpo_lab.errors import ConfigError

from typing import Any

import torch
from datasets import Dataset


class PromptSampler:
    """Draws ``batch_size`` rows at a time, reshuffling (seeded) at each epoch."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        if len(dataset) < batch_size:
            raise ConfigError(
                f"the task has {len(dataset)} examples, fewer than trainer.batch_size={batch_size}"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.position = 0

    def next_batch(self) -> tuple[list[Any], dict[str, list[Any]]]:
        """Prompts and the other dataset columns of the next batch."""
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.dataset), generator=self.generator).tolist()
            self.position = 0
        rows = self.dataset[self.order[self.position : self.position + self.batch_size]]
        self.position += self.batch_size
        prompts = rows.pop("prompt")
        return prompts, rows
