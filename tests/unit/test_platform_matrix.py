"""Every row of the platform table in DESIGN.md, decided without the machines."""

import pytest
from ansible.module_utils.platform_plan.matrix import PlatformError, platform_plan

LINUX = [
    # distribution, version, codename, distro PG, PG 15 source
    ("Debian", "11.9", "bullseye", 13, "pgdg"),
    ("Debian", "12.11", "bookworm", 15, "distro"),
    ("Debian", "13.1", "trixie", 17, "pgdg"),
    ("Ubuntu", "20.04", "focal", 12, "pgdg"),
    ("Ubuntu", "22.04", "jammy", 14, "pgdg"),
    ("Ubuntu", "24.04", "noble", 16, "pgdg"),
]


@pytest.mark.parametrize(("distribution", "version", "codename", "distro_pg", "source"), LINUX)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_linux_rows(distribution, version, codename, distro_pg, source, arch):
    plan = platform_plan("Debian", distribution, version, arch, 15, ts_version="2.19.3")
    assert plan["codename"] == codename
    assert plan["distro_pg_version"] == distro_pg
    assert plan["pg_source"] == source
    assert plan["arch"] == ("amd64" if arch == "x86_64" else "arm64")
    assert plan["pg_packages"] == ["postgresql-15", "postgresql-client-15"]
    assert plan["pg_dev_packages"] == ["postgresql-server-dev-15"]
    assert plan["service_name"] == "postgresql@15-main"
    assert plan["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert plan["config_dir"] == "/etc/postgresql/15/main"
    assert plan["data_dir"] == "/var/lib/postgresql/15/main"
    assert plan["socket_dir"] == "/var/run/postgresql"
    assert plan["pg_config"] == "/usr/lib/postgresql/15/bin/pg_config"
    assert plan["pkglibdir"] == "/usr/lib/postgresql/15/lib"
    assert plan["admin_os_user"] == "postgres"
    assert plan["admin_os_group"] == "postgres"
    assert plan["admin_db_user"] == "postgres"
    assert plan["homebrew_prefix"] is None
    assert plan["package_manager"] == "apt"
    official = plan["timescaledb"]["official"]
    assert official["repo"]["line"] == (
        "deb [signed-by=/etc/apt/keyrings/timescaledb.asc] https://packagecloud.io/timescale/timescaledb/%s/ %s main"
        % (distribution.lower(), codename))
    assert official["repo"]["key_url"] == "https://packagecloud.io/timescale/timescaledb/gpgkey"
    assert official["repo"]["probe_url"] == (
        "https://packagecloud.io/timescale/timescaledb/%s/dists/%s/Release" % (distribution.lower(), codename))
    assert official["packages"] == [
        "timescaledb-2-postgresql-15=2.19.3~*", "timescaledb-2-loader-postgresql-15=2.19.3~*"]
    assert official["tools_packages"] == ["timescaledb-tools"]
    assert plan["timescaledb"]["distro"] is None
    assert plan["timescaledb"]["source"]["upstream_url"] == (
        "https://github.com/timescale/timescaledb/archive/refs/tags/2.19.3.tar.gz")
    if source == "pgdg":
        repo = plan["pg_repo"]
        assert repo["line"] == (
            "deb [signed-by=/etc/apt/keyrings/pgdg.asc] https://apt.postgresql.org/pub/repos/apt %s-pgdg main"
            % codename)
        assert repo["key_url"] == "https://www.postgresql.org/media/keys/ACCC4CF8.asc"
        assert repo["keyring"] == "/etc/apt/keyrings/pgdg.asc"
    else:
        assert plan["pg_repo"] is None


def test_distro_pg_when_version_matches():
    """Ubuntu 22.04 with PG 14 needs no PGDG; Debian 12 with PG 16 does."""
    assert platform_plan("Debian", "Ubuntu", "22.04", "x86_64", 14)["pg_source"] == "distro"
    assert platform_plan("Debian", "Debian", "12", "x86_64", 16)["pg_source"] == "pgdg"


def test_debian13_distro_timescaledb_only_for_pg17():
    plan17 = platform_plan("Debian", "Debian", "13", "x86_64", 17, ts_version="2.19.3")
    assert plan17["pg_source"] == "distro"
    assert plan17["timescaledb"]["distro"] == {"packages": ["postgresql-17-timescaledb"], "edition": "apache"}
    assert plan17["service_name"] == "postgresql@17-main"
    assert plan17["pkglibdir"] == "/usr/lib/postgresql/17/lib"
    plan15 = platform_plan("Debian", "Debian", "13", "x86_64", 15, ts_version="2.19.3")
    assert plan15["timescaledb"]["distro"] is None


@pytest.mark.parametrize(("arch", "prefix", "norm"), [
    ("arm64", "/opt/homebrew", "arm64"),
    ("x86_64", "/usr/local", "x86_64"),
])
@pytest.mark.parametrize("version", ["11.7", "14.5", "15.0"])
def test_macos_rows(arch, prefix, norm, version):
    plan = platform_plan("Darwin", "MacOSX", version, arch, 15, ts_version="2.19.3", brew_user="alice")
    assert plan["homebrew_prefix"] == prefix
    assert plan["arch"] == norm
    assert plan["pg_source"] == "homebrew"
    assert plan["pg_packages"] == ["postgresql@15"]
    assert plan["service_manager"] == "brew"
    assert plan["service_name"] == "postgresql@15"
    assert plan["bin_dir"] == prefix + "/opt/postgresql@15/bin"
    assert plan["pg_config"] == prefix + "/opt/postgresql@15/bin/pg_config"
    assert plan["data_dir"] == prefix + "/var/postgresql@15"
    assert plan["config_dir"] == plan["data_dir"]
    assert plan["socket_dir"] == "/tmp"
    assert plan["admin_os_user"] == "alice"
    assert plan["admin_os_group"] == "admin"
    assert plan["admin_db_user"] == "alice"
    assert plan["include_dir_in_packaged_conf"] is False
    official = plan["timescaledb"]["official"]
    assert official["tap"] == "timescale/tap"
    assert official["packages"] == ["timescale/tap/timescaledb"]
    assert official["tools_packages"] == ["timescale/tap/timescaledb-tools"]
    assert official["move_script"] == prefix + "/bin/timescaledb_move.sh"
    assert plan["timescaledb"]["distro"] is None


def test_pg_version_drives_names():
    plan = platform_plan("Debian", "Debian", "12", "x86_64", "16")
    assert plan["pg_packages"][0] == "postgresql-16"
    assert plan["service_name"] == "postgresql@16-main"
    mac = platform_plan("Darwin", "MacOSX", "14", "arm64", 16, brew_user="bob")
    assert mac["service_name"] == "postgresql@16"


def test_cluster_name():
    plan = platform_plan("Debian", "Debian", "12", "x86_64", 15, cluster_name="quant")
    assert plan["service_name"] == "postgresql@15-quant"
    assert plan["config_dir"] == "/etc/postgresql/15/quant"


def test_pure_returns_fresh_dicts():
    first = platform_plan("Debian", "Debian", "12", "x86_64")
    first["pg_packages"].append("junk")
    assert "junk" not in platform_plan("Debian", "Debian", "12", "x86_64")["pg_packages"]


@pytest.mark.parametrize(("args", "fragment"), [
    (("RedHat", "CentOS", "9", "x86_64"), "unsupported operating system 'CentOS 9' (os family 'RedHat')"),
    (("Windows", "Microsoft Windows", "10", "x86_64"), "unsupported operating system 'Microsoft Windows 10'"),
    ((None, None, None, "x86_64"), "unsupported operating system"),
    (("Debian", "Debian", "10", "x86_64"), "unsupported Debian release '10'"),
    (("Debian", "Ubuntu", "18.04", "x86_64"), "unsupported Ubuntu release '18.04'"),
    (("Debian", "Ubuntu", "23.10", "x86_64"), "unsupported Ubuntu release '23.10'"),
    (("Debian", "Debian", "12", "s390x"), "unsupported architecture 's390x'"),
    (("Darwin", "MacOSX", "10.15", "x86_64"), "macOS 11 or later is required"),
    (("Darwin", "MacOSX", "beta", "arm64"), "unsupported macOS version 'beta'"),
    (("Darwin", "MacOSX", "14", "ppc"), "unsupported architecture 'ppc' on macOS"),
])
def test_unsupported_platforms_name_the_problem(args, fragment):
    with pytest.raises(PlatformError, match=None) as err:
        platform_plan(*args, brew_user="alice")
    assert fragment in str(err.value)


def test_macos_needs_brew_user():
    with pytest.raises(PlatformError, match="Homebrew user"):
        platform_plan("Darwin", "MacOSX", "14", "arm64")


def test_bad_pg_version():
    with pytest.raises(PlatformError, match="invalid PostgreSQL version 'fifteen'"):
        platform_plan("Debian", "Debian", "12", "x86_64", "fifteen")


def test_build_image_carries_what_the_role_installs_before_a_build():
    """scripts/build-images.sh preinstalls the source build's packages in
    localhost/quant-bookworm-build; if the plan's list grows, the image must too,
    or the scenarios using it would install the rest themselves, unnoticed."""
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "scripts" / "build-images.sh").read_text()
    line = next(ln for ln in script.splitlines() if "postgresql-server-dev-$pg" in ln and "cmake" in ln)
    listed = set(line.replace("$pg", "15").replace('"', " ").split())
    plan = platform_plan("Debian", "Debian", "12", "x86_64", 15)
    assert set(plan["build_packages"] + plan["pg_dev_packages"]) <= listed
