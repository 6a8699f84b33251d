"""The measured scenarios of benchmarks/pipeline.py and benchmarks/ingest.py, one per module.

The shared pieces (child processes, Kafka set-up, CPU meters, statistics,
results files) are in ``harness``; the scripts are thin entry points.
"""
