from ocirun.cli import entry

entry()
