"""Trust between the planes: the gateway CA, its distribution, status and rotation."""
