"""The payload simulator: scene sources (GeoTIFF, data sets, synthetic), the tiler, and the streamer
that feeds tiles to a runtime.

Every default lives in ``flightsim/defaults.toml``, read through :func:`runtime.config.load_defaults`.
"""
