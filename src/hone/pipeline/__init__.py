"""The pipeline every use runs, one module per part, imported by name (``from hone.pipeline.runs import
make_config``): the package itself imports nothing, so a light caller does not pull in torch.

- :mod:`.data_stages`: open, audit, clean, infer the schema, split; fit the preprocessor;
- :mod:`.network`: build the network and train it (the data-parallel processes included);
- :mod:`.after`: baseline, model choice, calibration, decision rule, test scoring with intervals;
- :mod:`.stages`: one run, stage by stage, in a staging folder;
- :mod:`.runs`: the config a call asks for, run folders, resume records, seeds, the run's files;
- :mod:`.dispatch`: ``fit`` (here, one of torchrun's processes, or on Ray Train via :mod:`.ray_train`).

The face (``hone.api``, the CLI) and the uses (search, federated, distributed, serve) call these; none of
them reaches into another's private pieces.
"""
