"""DAPO's choice of groups with signal, by hand."""

import math

import torch

from grpo_lab.algos.group_filter import choose_groups, groups_with_signal


def test_groups_with_signal_by_hand():
    # Pairs (1, 1) tied, (0, 1) signal, (2, 2) tied, (nan, nan) never equal: kept.
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 2.0, math.nan, math.nan])
    assert groups_with_signal(rewards, 2).tolist() == [False, True, False, True]


def test_tied_rewards_of_a_bigger_group():
    assert groups_with_signal(torch.tensor([0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0]), 4).tolist() == [False, True]


def test_groups_with_signal_are_taken_in_the_order_drawn():
    # Round 0: (tied, signal); round 1: (signal, signal); 2 wanted -> r0g1, r1g0.
    chosen = choose_groups([torch.tensor([False, True]), torch.tensor([True, True])], 2)
    assert chosen == [(0, 1), (1, 0)]


def test_shortfall_is_filled_with_the_latest_tied_groups():
    # One group with signal in two rounds: the other slot goes to round 1's tied group.
    chosen = choose_groups([torch.tensor([False, False]), torch.tensor([False, True])], 2)
    assert chosen == [(1, 0), (1, 1)]
