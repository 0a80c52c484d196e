"""The update engine shared by the training loop and the algorithms (PPO's critic): the
training forward pass (``forward``), the policy-gradient update (``update``), the KL term
(``kl_term``), optimizers (``optim``), the process group (``distributed``) and
sharding over it (``sharding``).

Below ``grpo_lab/methods`` and ``grpo_lab/trainer``: it imports only ``algos``,
``models``, ``registry`` and ``errors``, so an algorithm and the loop both build on it
without importing each other.
"""
