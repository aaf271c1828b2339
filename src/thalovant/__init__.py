"""Thalovant Python SDK: control plane, identities and the runtime client."""

__version__ = "0.1.0"
