"""The processes ocirun forks to build a container or to run a process in one.

See docs/architecture.md for the order of their steps and the messages between them.
"""
