"""The control plane: admin API, /metrics, live stream, web UI.

Kept empty on purpose: the data path and the recording writer import
`lanner.control.metrics`, which must not pull the admin API (FastAPI,
uvicorn) into every worker and writer process.
"""
