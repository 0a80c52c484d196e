"""Tools: plain Python functions with a JSON schema, called from the model's text.

A tool is a function with type hints and a Google-style docstring; its schema is
transformers' ``get_json_schema`` (what ``apply_chat_template(tools=...)`` renders, as
TRL and verl take it). The model calls one in the Hermes format that Qwen's chat
templates use and verl parses::

    <tool_call>{"name": "calculate", "arguments": {"expression": "37 * 42"}}</tool_call>

Every failure becomes the observation the model reads next, never an exception: an
unknown tool, arguments that are not JSON or do not fit the function, or the tool
raising. Results are cut to ``max_result_chars`` (verl's default, 256).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
MAX_RESULT_CHARS = 256


@dataclass
class ToolCall:
    """What one call came to: the observation text, and whether it was an error."""

    name: str
    result: str
    error: bool


def tool_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's JSON schema (OpenAI function format), from its signature and docstring."""
    from transformers.utils import get_json_schema

    schema = get_json_schema(fn)
    schema["function"].pop("return", None)  # not part of the call format
    return schema


def describe_tools(tools: Sequence[Callable[..., Any]], example: str = "") -> str:
    """The system-prompt text that lists the tools and the call format, for chat templates
    that do not render ``tools=`` themselves (SmolLM2's, ChatML); ``example``: a worked
    call, which a small model needs to ever make one."""
    schemas = "\n".join(json.dumps(tool_schema(fn)) for fn in tools)
    text = ("You can call tools. To call one, write\n"
            '<tool_call>{"name": <tool name>, "arguments": {<argument>: <value>}}</tool_call>\n'
            "and wait for its result. The tools:\n"
            f"<tools>\n{schemas}\n</tools>")
    return f"{text}\n{example}" if example else text


def find_calls(text: str) -> list[str]:
    """The bodies of the ``<tool_call>`` blocks in a model turn, in order."""
    return TOOL_CALL.findall(text)


def call_tool(body: str, tools: dict[str, Callable[..., Any]], max_result_chars: int = MAX_RESULT_CHARS) -> ToolCall:
    """Runs one ``<tool_call>`` body against ``tools`` (name -> function)."""
    try:
        call = json.loads(body)
        name, arguments = call["name"], call.get("arguments", {})
        if isinstance(arguments, str):  # some models write the arguments as a JSON string
            arguments = json.loads(arguments)
        if not isinstance(name, str):  # a sampled call can name anything JSON allows: [..], {..}, 3
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        if not isinstance(arguments, dict):
            raise TypeError("arguments must be an object")
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        return ToolCall("?", f"error: the tool call is not valid JSON with a name and arguments ({err})", True)
    fn = tools.get(name)
    if fn is None:
        return ToolCall(str(name), f"error: no tool named {name!r}; tools: {', '.join(sorted(tools))}", True)
    try:
        result = fn(**arguments)
    except Exception as err:  # noqa: BLE001 - whatever a tool raises is the model's observation
        return ToolCall(name, f"error: {type(err).__name__}: {err}"[:max_result_chars], True)
    return ToolCall(name, str(result)[:max_result_chars], False)
