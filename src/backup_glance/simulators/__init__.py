"""Faithful fake PBS / PVE / Databasement / Backrest servers, for the demo homelab and the tests.

Each simulator is an ASGI app that speaks the real wire format (paths, field names, wrappers, error bodies,
auth checks) from the reference notes, driven by a scenario whose times are relative to "now". `SimulatorServer`
runs one over real HTTP(S) on loopback with a self-signed certificate, so TLS pinning is exercised for real.
"""
