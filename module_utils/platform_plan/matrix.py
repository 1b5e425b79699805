"""Per-platform decisions for PostgreSQL + TimescaleDB, in one pure function.

`platform_plan()` answers, for one host, every question the postgresql and
timescaledb roles would otherwise scatter over `when:` clauses: where
PostgreSQL comes from, which repositories and keys to add, package names,
service names, paths, and who the admin OS user is. It does no I/O, so the
whole support matrix (Debian 11/12/13, Ubuntu 20.04/22.04/24.04, macOS arm64
and x86-64) is unit tested without any of those machines.
"""

from __future__ import annotations

# Debian/Ubuntu release -> (codename, PostgreSQL major the distribution ships).
DEBIAN_RELEASES = {
    "11": ("bullseye", 13),
    "12": ("bookworm", 15),
    "13": ("trixie", 17),
}
UBUNTU_RELEASES = {
    "20.04": ("focal", 12),
    "22.04": ("jammy", 14),
    "24.04": ("noble", 16),
}
# TimescaleDB packages a distribution itself carries: (distribution, release)
# -> {pg_major: [packages]}. Debian's build is the Apache-2 edition (no tsl/).
DISTRO_TIMESCALEDB = {
    ("debian", "13"): {17: ["postgresql-17-timescaledb"]},
}
MACOS_MIN = 11

PGDG_URL = "https://apt.postgresql.org/pub/repos/apt"
PGDG_KEY_URL = "https://www.postgresql.org/media/keys/ACCC4CF8.asc"
TIMESCALE_APT_URL = "https://packagecloud.io/timescale/timescaledb/%s/"
TIMESCALE_KEY_URL = "https://packagecloud.io/timescale/timescaledb/gpgkey"
TIMESCALE_TAP = "timescale/tap"
TIMESCALE_TAP_PROBE = "https://github.com/timescale/homebrew-tap"
UPSTREAM_TARBALL_URL = "https://github.com/timescale/timescaledb/archive/refs/tags/%s.tar.gz"
KEYRING_DIR = "/etc/apt/keyrings"

LINUX_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MAC_PREFIXES = {"arm64": "/opt/homebrew", "aarch64": "/opt/homebrew", "x86_64": "/usr/local", "amd64": "/usr/local"}

SUPPORTED_TEXT = "Debian 11/12/13, Ubuntu 20.04/22.04/24.04, macOS 11+ (arm64, x86_64)"


class PlatformError(ValueError):
    """The host is outside the support matrix; the message names what is wrong."""


def _apt_repo(name, url, suite, key_url, probe_url=None):
    keyring = "%s/%s.asc" % (KEYRING_DIR, name)
    return {
        "name": name,
        "url": url,
        "suite": suite,
        "components": ["main"],
        "key_url": key_url,
        "keyring": keyring,
        "line": "deb [signed-by=%s] %s %s main" % (keyring, url, suite),
        "probe_url": probe_url or "%s/dists/%s/Release" % (url.rstrip("/"), suite),
    }


def _linux_release(distro, release):
    """(release key, codename, PostgreSQL major the distribution ships) of a supported release."""
    if distro == "debian":
        releases, key = DEBIAN_RELEASES, release.split(".")[0]
    else:
        releases, key = UBUNTU_RELEASES, ".".join(release.split(".")[:2])
    if key not in releases:
        raise PlatformError(
            "unsupported %s release '%s': supported are %s"
            % (distro.capitalize(), release, ", ".join(sorted(releases))))
    codename, distro_pg = releases[key]
    return key, codename, distro_pg


def _linux_plan(distro, release, arch, pg, *, ts_version, cluster):
    key, codename, distro_pg = _linux_release(distro, release)
    pg_source = "distro" if pg == distro_pg else "pgdg"
    bin_dir = "/usr/lib/postgresql/%d/bin" % pg
    return {
        "os": distro,
        "os_family": "Debian",
        "release": key,
        "codename": codename,
        "arch": LINUX_ARCHES[arch],
        "pg_version": pg,
        "pg_source": pg_source,
        "distro_pg_version": distro_pg,
        "pg_repo": _apt_repo("pgdg", PGDG_URL, codename + "-pgdg", PGDG_KEY_URL) if pg_source == "pgdg" else None,
        "pg_packages": ["postgresql-%d" % pg, "postgresql-client-%d" % pg],
        "pg_dev_packages": ["postgresql-server-dev-%d" % pg],
        # psycopg2 for every database module; numpy for migration_validate's bulk reads.
        "python_packages": ["python3-psycopg2", "python3-numpy"],
        "build_packages": ["cmake", "gcc", "make", "libssl-dev", "tar", "xz-utils", "gzip", "ca-certificates"],
        "package_manager": "apt",
        "service_manager": "systemd",
        "service_name": "postgresql@%d-%s" % (pg, cluster),
        "cluster_name": cluster,
        "bin_dir": bin_dir,
        "config_dir": "/etc/postgresql/%d/%s" % (pg, cluster),
        "data_dir": "/var/lib/postgresql/%d/%s" % (pg, cluster),
        "socket_dir": "/var/run/postgresql",
        "pg_config": bin_dir + "/pg_config",
        "pkglibdir": "/usr/lib/postgresql/%d/lib" % pg,
        "sharedir": "/usr/share/postgresql/%d" % pg,
        "include_dir_in_packaged_conf": True,
        "homebrew_prefix": None,
        "admin_os_user": "postgres",
        "admin_os_group": "postgres",
        "admin_db_user": "postgres",
        "timescaledb": _linux_timescaledb(distro, key, codename, pg, ts_version),
    }


def _linux_timescaledb(distro, key, codename, pg, ts_version):
    """Where TimescaleDB can come from on a Debian-family host: Timescale's repository, the distribution, source."""
    # Timescale's apt versions look like 2.19.3~debian12 / 2.19.3~ubuntu22.04;
    # the loader must match the extension, so both are pinned.
    pin = "=%s~*" % ts_version
    return {
        "official": {
            "repo": _apt_repo("timescaledb", TIMESCALE_APT_URL % distro, codename, TIMESCALE_KEY_URL),
            "packages": [
                "timescaledb-2-postgresql-%d%s" % (pg, pin),
                "timescaledb-2-loader-postgresql-%d%s" % (pg, pin),
            ],
            "tools_packages": ["timescaledb-tools"],
            "edition": "timescale",
        },
        "distro": _distro_timescaledb(distro, key, pg),
        "source": {
            "upstream_url": UPSTREAM_TARBALL_URL % ts_version,
            "debian_suite": "trixie",
        },
    }


def _distro_timescaledb(distro, release, pg):
    packages = DISTRO_TIMESCALEDB.get((distro, release), {}).get(pg)
    if not packages:
        return None
    return {"packages": packages, "edition": "apache"}


def _macos_plan(release, arch, pg, *, ts_version, brew_user, cluster):
    try:
        major = int(str(release).split(".")[0])
    except ValueError:
        raise PlatformError("unsupported macOS version '%s': supported are %s" % (release, SUPPORTED_TEXT)) from None
    if major < MACOS_MIN:
        raise PlatformError("unsupported macOS version '%s': macOS %d or later is required" % (release, MACOS_MIN))
    if not brew_user:
        raise PlatformError("macOS needs the Homebrew user (brew_user): Homebrew refuses to run as root")
    prefix = MAC_PREFIXES[arch]
    formula = "postgresql@%d" % pg
    keg = "%s/opt/%s" % (prefix, formula)
    data_dir = "%s/var/%s" % (prefix, formula)
    return {
        "os": "macos",
        "os_family": "Darwin",
        "release": str(major),
        "codename": None,
        "arch": "arm64" if prefix == "/opt/homebrew" else "x86_64",
        "pg_version": pg,
        "pg_source": "homebrew",
        "distro_pg_version": None,
        "pg_repo": None,
        "pg_packages": [formula],
        "pg_dev_packages": [],
        "python_packages": ["psycopg2-binary", "numpy"],
        "build_packages": ["cmake"],
        "package_manager": "homebrew",
        "service_manager": "brew",
        "service_name": formula,
        "cluster_name": cluster,
        "bin_dir": keg + "/bin",
        # Homebrew's initdb keeps postgresql.conf in the data directory.
        "config_dir": data_dir,
        "data_dir": data_dir,
        "socket_dir": "/tmp",
        "pg_config": keg + "/bin/pg_config",
        # Best guess only; the roles ask pg_config at run time when it exists.
        "pkglibdir": "%s/lib/%s" % (keg, formula),
        "sharedir": "%s/share/%s" % (keg, formula),
        "include_dir_in_packaged_conf": False,
        "homebrew_prefix": prefix,
        # Homebrew's initdb runs as the brew user, who becomes the superuser.
        "admin_os_user": brew_user,
        "admin_os_group": "admin",
        "admin_db_user": brew_user,
        "timescaledb": _macos_timescaledb(prefix, ts_version),
    }


def _macos_timescaledb(prefix, ts_version):
    """Where TimescaleDB can come from on macOS: Timescale's Homebrew tap or source."""
    return {
        "official": {
            "tap": TIMESCALE_TAP,
            "probe_url": TIMESCALE_TAP_PROBE,
            "packages": ["%s/timescaledb" % TIMESCALE_TAP],
            "tools_packages": ["%s/timescaledb-tools" % TIMESCALE_TAP],
            # The tap formula copies its files into the PostgreSQL keg with this script.
            "move_script": "%s/bin/timescaledb_move.sh" % prefix,
            "edition": "timescale",
        },
        "distro": None,
        "source": {"upstream_url": UPSTREAM_TARBALL_URL % ts_version, "debian_suite": None},
    }


def platform_plan(os_family, distribution, version, arch, pg_version=15, *, ts_version="2.19.3",
                  brew_user=None, cluster_name="main"):
    """Return every per-platform fact the roles need for one host.

    Arguments are Ansible facts: ansible_os_family, ansible_distribution,
    ansible_distribution_version, ansible_architecture; brew_user is the
    (non-root) user that owns Homebrew on macOS. Raises PlatformError naming
    the unsupported OS, release or architecture.
    """
    family = str(os_family or "").strip()
    distro = str(distribution or "").strip().lower()
    arch = str(arch or "").strip().lower()
    try:
        pg = int(str(pg_version).split(".")[0])
    except ValueError:
        raise PlatformError("invalid PostgreSQL version '%s': expected a major version like 15" % pg_version) from None
    if family == "Debian" and distro in ("debian", "ubuntu"):
        if arch not in LINUX_ARCHES:
            raise PlatformError(
                "unsupported architecture '%s' on %s: supported are x86_64, aarch64" % (arch, distribution))
        return _linux_plan(distro, str(version), arch, pg, ts_version=ts_version, cluster=cluster_name)
    if family == "Darwin" or distro in ("macosx", "macos"):
        if arch not in MAC_PREFIXES:
            raise PlatformError("unsupported architecture '%s' on macOS: supported are arm64, x86_64" % arch)
        return _macos_plan(version, arch, pg, ts_version=ts_version, brew_user=brew_user, cluster=cluster_name)
    raise PlatformError(
        "unsupported operating system '%s %s' (os family '%s'): supported are %s"
        % (distribution, version, os_family, SUPPORTED_TEXT))
