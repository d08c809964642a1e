"""A spec conformance suite for OCI runtimes with a runc-style command line."""
