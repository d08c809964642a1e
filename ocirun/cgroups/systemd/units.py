"""systemd unit and slice names from a cgroupsPath, as runc 1.1's systemd driver derives them
(libcontainer/specconv createCgroupConfig, cgroups/systemd/common.go):

- cgroupsPath "slice:prefix:name" (split at every ":", exactly three parts, else refused); an
  absent or empty cgroupsPath is ":ocirun:<id>" (runc's is ":runc:<id>").
- The unit is "prefix-name.scope", or "name" itself when it ends with ".slice" (a slice unit,
  the prefix ignored).
- An empty slice is system.slice (runc uses user.slice for rootless containers, which ocirun
  does not run under systemd).
- A slice name holds its ancestors: "a-b.slice" is /a.slice/a-b.slice; "-.slice" is the root.
"""

from ocirun.errors import CgroupError

DEFAULT_PREFIX = "ocirun"
DEFAULT_SLICE = "system.slice"


def parse(cgroups_path: str | None, container_id: str) -> tuple[str, str]:
    """(slice, unit name) of a container."""
    if not cgroups_path:
        return DEFAULT_SLICE, f"{DEFAULT_PREFIX}-{container_id}.scope"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(
            f"cgroupsPath {cgroups_path!r}: expected the form slice:prefix:name for systemd "
            "cgroups (--systemd-cgroup)"
        )
    slice_, prefix, name = parts
    if not name or "/" in name or "/" in prefix:
        raise CgroupError(f"cgroupsPath {cgroups_path!r}: invalid unit name {name!r}")
    expand_slice(slice_ or DEFAULT_SLICE)  # refuse a bad slice before anything is made
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    return slice_ or DEFAULT_SLICE, unit


def expand_slice(slice_: str) -> str:
    """The cgroup path of a slice: "a-b.slice" -> "/a.slice/a-b.slice", "-.slice" -> "/"."""
    stem = slice_.removesuffix(".slice")
    if stem == slice_ or not stem or "/" in slice_:
        raise CgroupError(f"invalid slice name {slice_!r}: NAME.slice, without '/'")
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if not component:  # "a--b.slice", "-a.slice", "a-.slice"
            raise CgroupError(f"invalid slice name {slice_!r}: an empty part between dashes")
        path += f"/{prefix}{component}.slice"
        prefix += component + "-"
    return path


def cgroup_path(slice_: str, unit: str) -> str:
    """Where systemd puts the unit's cgroup, from the root of each hierarchy."""
    parent = expand_slice(slice_)
    return f"{parent.rstrip('/')}/{unit}"
