"""The closed-loop experiment, its long-tailed pool, the offline demo and the 127.0.0.1 image server."""
