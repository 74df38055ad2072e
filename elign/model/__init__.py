"""elign.model: EDM's EGNN dynamics network, its sizes, EDM checkpoint import and our checkpoint files.

Modules: ``graph`` (sparse per-molecule edges of a padded batch), ``egnn`` (EDM's EGNN layers),
``dynamics`` (EGNNDynamics = EDM's ``egnn_dynamics``), ``presets`` (edm_qm9, edm_geom, small_cpu and the
model-config dict), ``edm_import`` (EDM args pickles / state dicts), ``checkpoint`` (atomic save/load).
The diffusion model that wraps the network lives in :mod:`elign.diffusion`.
"""
