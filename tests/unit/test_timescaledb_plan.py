"""TimescaleDB version compatibility and install-method choice."""

import pytest
from ansible.module_utils.platform_plan.timescaledb import choose_install_method, compatibility_problem, parse_version


def test_parse_version():
    assert parse_version("2.19.3") == (2, 19, 3)
    assert parse_version("2.11") == (2, 11, 0)
    with pytest.raises(ValueError, match="invalid TimescaleDB version 'latest'"):
        parse_version("latest")
    with pytest.raises(ValueError, match="invalid TimescaleDB version '2'"):
        parse_version("2")


@pytest.mark.parametrize("pg", [14, 15, 16, 17])
def test_default_version_supports_pg_14_to_17(pg):
    assert compatibility_problem("2.19.3", pg) == ""


@pytest.mark.parametrize(("ts", "pg", "fragment"), [
    ("2.10.3", 15, "too old: this project needs 2.11.0 or later"),
    ("2.29.0", 15, "does not support PostgreSQL 15: support was dropped in 2.29.0"),
    ("2.30.1", "15", "support was dropped in 2.29.0"),
    ("2.20.0", 14, "support was dropped in 2.20.0"),
    ("2.12.0", 16, "support starts with 2.13.0"),
    ("2.16.1", 17, "support starts with 2.17.0"),
    ("2.19.3", 12, "PostgreSQL 12 is not supported"),
    ("two", 15, "invalid TimescaleDB version 'two'"),
])
def test_incompatible_pairs(ts, pg, fragment):
    if fragment.startswith("invalid"):
        with pytest.raises(ValueError, match=fragment):
            compatibility_problem(ts, pg)
    else:
        assert fragment in compatibility_problem(ts, pg)


def test_last_pg15_release_is_fine():
    assert compatibility_problem("2.28.9", 15) == ""
    assert compatibility_problem("2.11.0", 15) == ""


def test_auto_prefers_official():
    out = choose_install_method("auto", official_reachable=True, distro_available=True)
    assert out["method"] == "official" and "answered" in out["reason"]


def test_auto_falls_back_to_distro():
    out = choose_install_method("auto", official_reachable=False, distro_available=True)
    assert out["method"] == "distro"


def test_auto_falls_back_to_upstream_source():
    out = choose_install_method("auto", upstream_reachable=True)
    assert (out["method"], out["origin"]) == ("source", "upstream")


def test_auto_falls_back_to_debian_source_offline():
    out = choose_install_method("auto")
    assert (out["method"], out["origin"]) == ("source", "debian")
    assert "Debian's source package" in out["reason"]


def test_auto_respects_origin_debian_even_when_upstream_answers():
    out = choose_install_method("auto", upstream_reachable=True, source_origin="debian")
    assert out["origin"] == "debian"


def test_local_tarball_wins_for_source():
    assert choose_install_method("auto", local_tarball="/srv/ts.tar.gz")["origin"] == "local"
    assert choose_install_method("source", local_tarball="/srv/ts.tar.gz")["origin"] == "local"


def test_explicit_methods():
    assert choose_install_method("official")["method"] == "official"
    assert choose_install_method("distro", distro_available=True)["method"] == "distro"
    assert choose_install_method("source", source_origin="debian") == {
        "method": "source", "origin": "debian", "edition": "apache",
        "reason": "requested (timescaledb_install_method=source)"}


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"requested": "ppa"}, "unknown timescaledb_install_method 'ppa'"),
    ({"requested": "source", "source_origin": "git"}, "unknown timescaledb_source_origin 'git'"),
    ({"requested": "distro"}, "carries no TimescaleDB package"),
])
def test_bad_choices(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        choose_install_method(**kwargs)


@pytest.mark.parametrize(("kwargs", "method", "origin", "edition"), [
    ({"official_reachable": True}, "official", None, "timescale"),
    ({"distro_available": True}, "distro", None, "apache"),
    ({"upstream_reachable": True}, "source", "upstream", "timescale"),
    ({}, "source", "debian", "apache"),
    ({"local_tarball": "/srv/timescaledb-2.19.3.tar.gz"}, "source", "local", "timescale"),
])
def test_the_choice_says_which_edition_it_gives(kwargs, method, origin, edition):
    out = choose_install_method("auto", **kwargs)
    assert (out["method"], out["origin"], out["edition"]) == (method, origin, edition)


def test_require_community_passes_over_the_distribution_package_in_auto():
    out = choose_install_method("auto", distro_available=True, upstream_reachable=True, require_community=True)
    assert (out["method"], out["origin"], out["edition"]) == ("source", "upstream", "timescale")
    local = choose_install_method("source", source_origin="local", local_tarball="/v/ts.tar.gz",
                                  require_community=True)
    assert (local["origin"], local["edition"]) == ("local", "timescale")


@pytest.mark.parametrize(("requested", "kwargs", "named"), [
    ("auto", {"distro_available": True}, "a source build from the debian origin"),
    ("source", {"source_origin": "debian"}, "a source build from the debian origin"),
    ("distro", {"distro_available": True}, "the distro install method"),
])
def test_require_community_refuses_an_apache_only_choice_before_installing(requested, kwargs, named):
    with pytest.raises(ValueError, match="timescaledb_require_community is true, but %s gives the Apache-2 "
                       "edition" % named):
        choose_install_method(requested, require_community=True, **kwargs)
