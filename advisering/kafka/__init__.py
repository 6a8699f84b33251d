"""Kafka at the edge: topics as code, clients, the producer, reading a topic, dead letters.

Importing this package loads nothing; each module pulls in the client library it needs.
"""
