"""ocirun: an OCI container runtime in Python that behaves like runc."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"


def load_site_packages() -> None:
    """Put site-packages on sys.path when the launcher started Python with -S (see bin/ocirun).

    Only the rare paths that need a third-party package (jsonschema's error messages, pyroute2
    for network devices) call this; every other command starts without the cost of `site`.
    """
    import sys

    if sys.flags.no_site:
        import site

        site.main()
