"""Design, train and export vessel segmentation networks as flight model bundles.

One road from torch to a bundle, shared by the hand-designed baseline (:mod:`search.baseline`: one
fixed genome) and the evolutionary search (:mod:`search.evolution`): the network of a genome
(:mod:`search.network`, :mod:`search.space`), the data (:mod:`search.dataset`, :mod:`search.data`),
one training loop (:func:`search.train.fit`), one exporter (:mod:`search.export_ir`) and one
manifest (:func:`search.candidate.manifest_for`). Every default lives in ``search/defaults.toml``
(:mod:`search.config`).
"""
