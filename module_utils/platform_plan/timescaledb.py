"""Pure TimescaleDB decisions: version compatibility and install method.

The timescaledb role feeds these with facts and probe results; keeping the
rules here makes every branch unit-testable without a network.
"""

from __future__ import annotations

# The oldest TimescaleDB the project's schema supports (runbook: 2.11+).
MIN_TIMESCALEDB = (2, 11, 0)
# PostgreSQL major -> (first TimescaleDB supporting it, first one that dropped it).
PG_SUPPORT = {
    13: ((2, 1, 0), (2, 16, 0)),
    14: ((2, 5, 0), (2, 20, 0)),
    15: ((2, 9, 0), (2, 29, 0)),
    16: ((2, 13, 0), None),
    17: ((2, 17, 0), None),
    18: ((2, 23, 0), None),
}
METHODS = ("auto", "official", "distro", "source")
ORIGINS = ("upstream", "debian", "local")


def parse_version(text):
    """'2.19.3' -> (2, 19, 3); raises ValueError naming the bad text."""
    parts = str(text).strip().split(".")
    try:
        numbers = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError("invalid TimescaleDB version '%s': expected X.Y.Z" % text) from None
    if not 2 <= len(numbers) <= 3:
        raise ValueError("invalid TimescaleDB version '%s': expected X.Y.Z" % text)
    return numbers + (0,) * (3 - len(numbers))


def _fmt(version):
    return ".".join(str(part) for part in version)


def compatibility_problem(ts_version, pg_version):
    """Return '' when the pair is supported, else one sentence saying why not."""
    version = parse_version(ts_version)
    pg = int(str(pg_version).split(".")[0])
    if version < MIN_TIMESCALEDB:
        return "TimescaleDB %s is too old: this project needs %s or later" % (ts_version, _fmt(MIN_TIMESCALEDB))
    if pg not in PG_SUPPORT:
        return "PostgreSQL %s is not supported by any TimescaleDB this project knows" % pg
    first, dropped = PG_SUPPORT[pg]
    if version < first:
        return "TimescaleDB %s does not support PostgreSQL %d: support starts with %s" % (ts_version, pg, _fmt(first))
    if dropped and version >= dropped:
        return "TimescaleDB %s does not support PostgreSQL %d: support was dropped in %s" % (
            ts_version, pg, _fmt(dropped))
    return ""


# What each install gives (SHOW timescaledb.license): Timescale's packages and upstream's
# source (tsl/ included) the Community edition; Debian's package and source package the
# Apache-2 edition (Debian strips tsl/). A local tarball is taken as upstream's; without
# tsl/ the build falls back to Apache and the role's verification says so.
EDITIONS = {"official": "timescale", "distro": "apache", "upstream": "timescale", "debian": "apache",
            "local": "timescale"}


def choose_install_method(requested, *, official_reachable=False, distro_available=False,
                          upstream_reachable=False, source_origin="upstream", local_tarball="",
                          require_community=False):
    """Pick how to install TimescaleDB and say why.

    auto: the official repository when it answers, else the distribution's
    package when it carries one for this PostgreSQL major, else a source
    build (upstream archive when reachable, else Debian's source package).
    With require_community, auto skips the Apache-only choices and an explicit
    Apache-only choice is an error. Returns {"method", "origin", "edition", "reason"};
    origin is only set for source.
    """
    choice = _choose(requested, official_reachable=official_reachable, distro_available=distro_available,
                     upstream_reachable=upstream_reachable, source_origin=source_origin,
                     local_tarball=local_tarball, require_community=require_community)
    choice["edition"] = EDITIONS[choice["origin"] or choice["method"]]
    if require_community and choice["edition"] != "timescale":
        raise ValueError(
            "timescaledb_require_community is true, but %s gives the Apache-2 edition (no compression or "
            "continuous aggregates): use Timescale's packages (official), or a source build from upstream or a "
            "local upstream tarball (timescaledb_source_origin=upstream|local)" % _describe(choice))
    return choice


def _describe(choice):
    if choice["method"] == "source":
        return "a source build from the %s origin" % choice["origin"]
    return "the %s install method" % choice["method"]


def _choose(requested, *, official_reachable, distro_available, upstream_reachable, source_origin, local_tarball,
            require_community):
    if requested not in METHODS:
        raise ValueError("unknown timescaledb_install_method '%s': choose one of %s"
                         % (requested, ", ".join(METHODS)))
    if source_origin not in ORIGINS:
        raise ValueError("unknown timescaledb_source_origin '%s': choose one of %s"
                         % (source_origin, ", ".join(ORIGINS)))
    if local_tarball:
        source_origin = "local"
    if requested == "source":
        return {"method": "source", "origin": source_origin, "reason": "requested (timescaledb_install_method=source)"}
    if requested in ("official", "distro"):
        if requested == "distro" and not distro_available:
            raise ValueError("timescaledb_install_method=distro, but this distribution carries no TimescaleDB "
                             "package for this PostgreSQL major")
        return {"method": requested, "origin": None, "reason": "requested (timescaledb_install_method=%s)" % requested}
    if official_reachable:
        return {"method": "official", "origin": None, "reason": "auto: the official Timescale repository answered"}
    if distro_available and not require_community:
        return {"method": "distro", "origin": None,
                "reason": "auto: the official repository did not answer; the distribution carries a package"}
    if source_origin == "local":
        origin, why = "local", "a local tarball was given"
    elif upstream_reachable and source_origin == "upstream":
        origin, why = "upstream", "the upstream release archive answered"
    else:
        origin, why = "debian", "the upstream archive did not answer (or origin=debian); using Debian's source package"
    return {"method": "source", "origin": origin,
            "reason": "auto: no official repository and no distribution package; %s" % why}
