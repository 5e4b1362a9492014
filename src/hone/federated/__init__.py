"""Federated fine-tuning on Flower: one model trained across data silos whose rows never leave them.

- :mod:`~hone.federated.silos` deals one table into silo files for a simulation;
- :mod:`~hone.federated.local` is a silo's side in plain hone: its split, its counts and sums, a round
  of hone's training loop from the global weights;
- :mod:`~hone.federated.stats` agrees the schema, labels and preprocessing from those counts and sums;
- :mod:`~hone.federated.protocol` and :mod:`~hone.federated.apps` are the Flower messages and apps;
- :mod:`~hone.federated.server` drives the rounds (FedAvg, FedProx, differential privacy), checkpoints
  and resumes them;
- :mod:`~hone.federated.simulate` and :mod:`~hone.federated.deploy` run it on Flower's simulation and
  deployment engines; :mod:`~hone.federated.package` leaves the run folder ``hone fit`` would.

Flower is imported only inside the functions that need it (the ``federated`` extra).
"""
