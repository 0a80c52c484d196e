"""Model inputs shared by rollouts and training passes: positions and KV caches."""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import DynamicLayer


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` assigns them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def cache_kwargs(model: torch.nn.Module, cache: object) -> dict[str, object]:
    # The KV-cache argument was renamed from `past_key_values` to `cache` in transformers 5;
    # a peft wrapper forwards **kwargs, so ask the model it wraps.
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    return {name: cache}


def output_cache(output: object) -> object:
    """The KV cache a forward pass returned (``cache`` in transformers 5, else ``past_key_values``)."""
    return output.cache if "cache" in output else output.past_key_values


class SpareRoomLayer(DynamicLayer):
    """A KV-cache layer whose keys and values live in buffers with room to grow:
    ``update`` writes the new tokens in place instead of concatenating the whole cache
    (which copies every layer's cache once per generated token). ``keys``/``values``
    stay views of the filled part, so everything that reads them sees a DynamicLayer.
    Only ``update`` is taken over: for decoding, not for beam search or cropping."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        self.device = keys.device
        self.is_initialized = True
        self._length = 0
        self._keys = keys.new_empty((*keys.shape[:2], max(capacity, keys.shape[-2]), keys.shape[-1]))
        self._values = values.new_empty((*values.shape[:2], self._keys.shape[-2], values.shape[-1]))
        self.update(keys, values)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # out of room: double it
            grow = lambda t: torch.cat([t, torch.empty_like(t)], dim=-2)  # noqa: E731
            self._keys, self._values = grow(self._keys), grow(self._values)
        self._keys[:, :, self._length : end] = key_states
        self._values[:, :, self._length : end] = value_states
        self._length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def with_spare_room(cache: object, repeats: int, capacity: int) -> object:
    """``cache`` with every row repeated ``repeats`` times and its plain layers turned
    into :class:`SpareRoomLayer` with room for ``capacity`` tokens."""
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and layer.is_initialized:
            cache.layers[i] = SpareRoomLayer(layer.keys.repeat_interleave(repeats, dim=0),
                                             layer.values.repeat_interleave(repeats, dim=0), capacity)
        else:
            layer.batch_repeat_interleave(repeats)
    return cache


def _groups_share_prompt(prompt_ids: torch.Tensor, group_size: int) -> bool:
    """Whether the rows come in whole groups of ``group_size`` with the same prompt."""
    rows = prompt_ids.shape[0]
    if group_size < 2 or rows % group_size:
        return False
    return torch.equal(prompt_ids[::group_size].repeat_interleave(group_size, dim=0), prompt_ids)


def shared_prompt_passes(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    width: int,
    group_size: int,
    head_kwargs: dict[str, object] | None = None,
    tail_kwargs: dict[str, object] | None = None,
) -> tuple[object, object] | None:
    """Prompt + completion rows (the last ``width`` tokens are the completion) in two
    forward passes, when they come in whole groups of ``group_size`` completions of one
    prompt, as rollouts produce them: each group's prompt once (``head``), then every
    row's completion tokens but the last (``tail``), attending to the prompt's KV cache
    expanded to the group. The positions that predict completion tokens are the head's
    last and all of the tail's (:func:`completion_positions`). Same numbers as one pass over the full rows, gradients
    included, for a G-th of the prompt compute. None when the rows are not such groups
    or the completion is a single token."""
    prompt_len = input_ids.shape[1] - width
    if width < 2 or not _groups_share_prompt(input_ids[:, :prompt_len], group_size):
        return None
    g = group_size
    positions = position_ids_from_mask(attention_mask)
    head = model(input_ids=input_ids[::g, :prompt_len], attention_mask=attention_mask[::g, :prompt_len],
                 position_ids=positions[::g, :prompt_len], use_cache=True, **(head_kwargs or {}))
    cache = output_cache(head)
    cache.batch_repeat_interleave(g)
    tail = model(input_ids=input_ids[:, prompt_len:-1], attention_mask=attention_mask[:, :-1],
                 position_ids=positions[:, prompt_len:-1], use_cache=True, **cache_kwargs(model, cache),
                 **(tail_kwargs or {}))
    return head, tail


def completion_positions(head: torch.Tensor, tail: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per-position outputs ``[B, width, ...]`` of :func:`shared_prompt_passes` at the
    positions that predict completion tokens: the head's last, expanded to the group,
    then the tail's."""
    return torch.cat([head[:, -1:].repeat_interleave(group_size, dim=0), tail], dim=1)
