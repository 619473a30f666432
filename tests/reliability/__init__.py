"""Reliability and security suite: load, faults, damaged index, hostile input, no egress (issue 8).

Bounded for CI by default; RELIABILITY_SCALE=N (an integer, default 1) multiplies the loads for a longer soak.
"""
