"""The caseworkers' inbox: durable store, Kafka consumer, HTTP API and web page."""
