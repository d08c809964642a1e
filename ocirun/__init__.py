"""ocirun: an OCI container runtime in Python that behaves like runc."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
