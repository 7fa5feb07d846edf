"""Engines in worker processes: ProcessEngine (client.py) speaks the engine seam over loopback
HTTP (wire.py) to a worker that holds the real engine (worker.py)."""
