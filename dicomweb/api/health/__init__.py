"""Liveness and readiness probes for load balancers and the Functions host."""
