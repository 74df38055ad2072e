"""The work of each stage command; ``elign.cli`` only parses its arguments and calls one function here.

``pretrain`` (train, or materialize ``pretrain.source``), ``import_edm``, ``sample`` (and the sampling-time
comparison), ``evaluate`` (and ``summarize``), ``finetune`` (FED-GRPO, or materialize ``finetune.source``),
``dft`` (selection, shards, gather), ``stats``, ``models`` (list, ship: ``ship``, ``ship_aligned``) and
``export``. The data stage is :func:`elign.data.prepare.prepare`, the report :func:`elign.report.build_report`.
"""
