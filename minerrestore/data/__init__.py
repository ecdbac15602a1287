"""Training data: augmentation, degradation and the folders they write.

- :mod:`minerrestore.data.folders`: per-image seeds, JSON-lines manifests, output-folder checks.
- :mod:`minerrestore.data.augment`: the paper's x6 augmentation (``minerrestore augment``).
- :mod:`minerrestore.data.degradation`: Eq. 14 and the miner conditions (kernels, stages,
  ``sample_params``, ``apply_degradation``), and ``DegradationSettings``.
- :mod:`minerrestore.data.pairs`: (gt, lq) pair folders, splits and replay (``minerrestore degrade``).
- :mod:`minerrestore.data.presets`: the degradation presets (``paper``, ``miner``, user YAML).
- :mod:`minerrestore.data.datasets`: the torch datasets of (low-quality, ground-truth) face pairs
  (``DegradedFaceDataset``, ``PairedFaceDataset``) and training's faces, pairs and batch order.
"""
