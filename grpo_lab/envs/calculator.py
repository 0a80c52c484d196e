"""Built-in environments: a calculator tool, and a second try after feedback.

``calculator``: the model may call ``calculate`` (one arithmetic expression) as often as
the turn limit allows; a turn without a tool call is its answer and ends the episode.
With the arithmetic task set to products of two-digit numbers
(``task.operations=[*] task.min_operand=10 task.max_operand=99``) the embedded model
almost never gets one right in its head, and reliably with the tool.

``retry``: no tools; a wrong answer is told "wrong, try again" once per remaining turn;
a right one ends the episode.

The reward of an episode comes from the reward mix, which reads the whole conversation
(the answer from the assistant turns, grpo_lab/rewards/answers.py); ``Step.reward`` is
also recorded (``env_reward``, the ``environment`` reward function) for environments
that score episodes themselves.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable

from grpo_lab.envs.base import ENVIRONMENTS, Environment, Step
from grpo_lab.envs.tools import call_tool, describe_tools, find_calls
from grpo_lab.eval.answers import answer_is_correct

_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
MAX_EXPRESSION_CHARS = 100


def calculate(expression: str) -> str:
    """Evaluates an arithmetic expression.

    Args:
        expression: numbers with + - * / and parentheses, for example "37 * 42".
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    value = _evaluate(ast.parse(expression.strip(), mode="eval").body)
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _evaluate(node: ast.AST) -> float:
    # Only numbers and the four operators: nothing else in the tree is evaluated.
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("only numbers, + - * / and parentheses are allowed")


@ENVIRONMENTS.register("calculator")
class CalculatorEnv(Environment):
    """A calculator tool; the first turn without a tool call is the answer."""

    tools = (calculate,)
    EXAMPLE = ('For example, for "What is 12 * 34?" write\n'
               '<tool_call>{"name": "calculate", "arguments": {"expression": "12 * 34"}}</tool_call>\n'
               "then, when the result 408 comes back, answer <answer>408</answer>")

    def reset(self, prompt: list[dict[str, str]], row: dict[str, Any]) -> list[dict[str, str]]:
        self.row = row
        # The task's own instructions, then the tools (SmolLM2's template has no tools=).
        task_system = [m["content"] for m in prompt if m["role"] == "system"]
        system = {"role": "system", "content": "\n\n".join([*task_system, describe_tools(self.tools, self.EXAMPLE)])}
        return [system, *[m for m in prompt if m["role"] != "system"]]

    def step(self, text: str) -> Step:
        calls = find_calls(text)
        if not calls:
            return Step(done=True, reward=self.final_reward_of(text))
        by_name = {fn.__name__: fn for fn in self.tools}
        results = [call_tool(body, by_name) for body in calls]
        content = "\n".join(r.result for r in results)
        errors = sum(r.error for r in results)
        return Step(observation={"role": "tool", "content": content},
                    info={"tool_calls": float(len(results)), "tool_errors": float(errors)})

    def final_reward_of(self, text: str) -> float:
        return float(answer_is_correct(text, self.row["answer"]))


@ENVIRONMENTS.register("retry")
class RetryEnv(Environment):
    """Feedback without tools: "wrong, try again" after a wrong answer."""

    def step(self, text: str) -> Step:
        if answer_is_correct(text, self.row["answer"]):
            return Step(done=True, reward=1.0)
        return Step(observation={"role": "user", "content": "That is wrong, try again."},
                    info={"retries": 1.0})
