"""File helpers shared by the packages' cores (no rclpy): content hashes of model files."""

import hashlib


def sha256_of(path) -> str:
    """Return the sha256 (hex) of a file, read in 1 MiB blocks; FileNotFoundError if missing."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
