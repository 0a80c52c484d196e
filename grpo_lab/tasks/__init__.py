"""Tasks: datasets of chat prompts with reference answers, built by name."""

from grpo_lab.tasks.base import TASK_BUILDERS, build_task, to_chat_prompts
from grpo_lab.tasks import arithmetic, gsm8k, tldr  # noqa: F401  (register builders)

__all__ = ["TASK_BUILDERS", "build_task", "to_chat_prompts"]
