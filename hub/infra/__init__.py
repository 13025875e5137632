"""Process-wide services: config, secrets, the key ring, JWTs, metrics, server logging."""
