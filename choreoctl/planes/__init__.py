"""Planes as custom resources: registration, listing, unregistration and Environments."""
