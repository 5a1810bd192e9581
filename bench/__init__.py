"""notif's benchmarks: `make bench` (python -m bench) runs them all; see docs/benchmarks.md."""
