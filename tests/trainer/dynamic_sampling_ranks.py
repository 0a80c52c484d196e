"""Run by tests/trainer/test_dynamic_sampling.py under ``accelerate launch`` with 2
processes: each rank samples its own hand-made rounds through ``sample_step``, and rank 0
prints what every rank got as one JSON line."""

import json
import sys

import torch.distributed as dist

from grpo_lab.engine.distributed import Parallel
from grpo_lab.trainer.rollout_rounds import sample_step
from tests.trainer.test_dynamic_sampling import Rounds

# Per rank, per round: the rewards of 2 groups of 2 completions.
ROUNDS = {
    # Rank 0 has its 2 groups with signal in round 0; rank 1 has 1 in round 0 (its
    # group 1) and 1 in round 1 (its group 1).
    "fill": [[[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]],
             [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]],
    # Rank 1 never has a group with signal.
    "bound": [[[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]],
              [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 2.0, 2.0]]],
}

parallel = Parallel("no", cpu=True)
draw = Rounds(ROUNDS[sys.argv[1]][parallel.rank])
out = sample_step(draw, num_groups=2, dynamic=True, max_rounds=3, parallel=parallel, pad_id=0)
ranks = [None] * parallel.world_size
dist.all_gather_object(ranks, {"calls": draw.calls, "prompts": out.batch.prompts, "rewards": out.rewards.tolist()})
if parallel.is_main:
    print(json.dumps({"ranks": ranks, "metrics": out.metrics, "generated": out.generated_lengths.tolist()}), flush=True)
# Both ranks leave the process group together: a rank exiting while the other still
# holds the gloo connection can abort it at interpreter exit.
parallel.barrier()
dist.destroy_process_group()
