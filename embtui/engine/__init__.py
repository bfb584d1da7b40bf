"""UI-free core: models and devices, encoding with a cache, search, metrics and evaluation runs."""
