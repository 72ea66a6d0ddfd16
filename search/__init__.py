"""Design, train and export vessel segmentation networks as flight model bundles.

The training and export pieces (:mod:`search.model`, :mod:`search.data`, :mod:`search.train`,
:mod:`search.export`, :mod:`search.evaluate`) are shared by the fixed baseline
(:mod:`search.baseline`) and the evolutionary search that varies the network's widths. Every default
lives in ``search/defaults.toml``.
"""
