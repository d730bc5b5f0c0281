"""Upstreams: backend pools, balancing, health, outlier ejection; vendor pools later."""
