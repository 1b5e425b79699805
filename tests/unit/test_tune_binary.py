"""module_utils/tune/binary.py: the timescaledb-tune command line and the parser of its output.

The binary is not installable here (tests/tune_helpers.py says what the
sample is and is not); the parser is tested on that sample, on a whole
postgresql.conf as --out-path writes it, and on the odd lines a conf file has.
"""

from __future__ import annotations

import os

import pytest
from ansible.module_utils.tune import binary as tb
from ansible.module_utils.tune.recommender import GIGABYTE, recommend
from tune_helpers import SAMPLE_OUT_CONF, SAMPLE_STDERR, SAMPLE_STDOUT

INPUTS = dict(memory=8 * GIGABYTE, cpus=4, pg_version="15", max_connections=100, wal_disk_size=0,
              max_background_workers=16, profile="default")


def expected_8gb_4cpu():
    settings, _ = recommend(8 * GIGABYTE, 4, "15", max_connections=100)
    return dict(settings)


def test_sample_parses_to_the_module_recommendation():
    settings, based_on = tb.parse_output(SAMPLE_STDOUT, SAMPLE_STDERR)
    assert dict(settings) == expected_8gb_4cpu()
    assert list(settings)[:4] == ["shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem"]
    assert based_on == dict(memory="8.00 GB", cpus=4, pg_version="15")


def test_bookkeeping_and_preload_lines_are_not_recommendations():
    settings, _ = tb.parse_output(SAMPLE_OUT_CONF)
    assert "timescaledb.last_tuned" not in settings  # a timestamp: would make every run a change
    assert "timescaledb.last_tuned_version" not in settings
    assert "shared_preload_libraries" not in settings  # the postgresql role owns it


def test_out_conf_form_parses_the_same():
    settings, based_on = tb.parse_output(SAMPLE_OUT_CONF)
    assert dict(settings) == expected_8gb_4cpu()  # commented line skipped, trailing comment dropped
    assert based_on is None


@pytest.mark.parametrize(("line", "value"), [
    ("work_mem = 16MB", "16MB"),
    ("work_mem=16MB", "16MB"),
    ("  work_mem = 16MB   # per sort", "16MB"),
    ("search_path = '\"$user\", public'", '"$user", public'),
    ("log_line_prefix = '%m # it''s here ' # comment", "%m # it's here "),
    ("timescaledb.max_background_workers = 16", "16"),
])
def test_value_forms(line, value):
    settings, _ = tb.parse_output(line + "\n")
    assert list(settings.values()) == [value]


def test_colour_codes_and_noise_are_ignored():
    settings, _ = tb.parse_output("\x1b[32mshared_buffers = 2GB\x1b[0m\nIs this okay? [(y)es/(n)o]: \n#jit = on\n")
    assert dict(settings) == {"shared_buffers": "2GB"}


def test_last_occurrence_wins_and_moves_to_the_end():
    settings, _ = tb.parse_output("jit = on\nwork_mem = 4MB\njit = off\n")
    assert list(settings.items()) == [("work_mem", "4MB"), ("jit", "off")]


def test_unterminated_quote_fails_naming_the_line():
    with pytest.raises(tb.BinaryError, match=r"unterminated quote.*search_path"):
        tb.parse_output("search_path = 'public\n")


@pytest.mark.parametrize(("num_bytes", "text"), [(8 * GIGABYTE, "8388608kB"), (1000, "1000"), (0, "0kB")])
def test_memory_argument_is_exact(num_bytes, text):
    assert tb.memory_argument(num_bytes) == text


def test_command_passes_every_input():
    argv = tb.tune_command("/usr/bin/timescaledb-tune", dict(INPUTS, wal_disk_size=10 * GIGABYTE,
                                                               profile="promscale", max_background_workers=20),
                           "/tmp/x/postgresql.conf")
    assert argv[0] == "/usr/bin/timescaledb-tune"
    assert {"--quiet", "--yes", "--dry-run", "--color=false", "--conf-path=/tmp/x/postgresql.conf",
            "--pg-version=15", "--memory=8388608kB", "--cpus=4", "--max-conns=100", "--max-bg-workers=20",
            "--wal-disk-size=10485760kB", "--profile=promscale"} == set(argv[1:])


def test_command_leaves_derived_and_default_inputs_to_the_binary():
    argv = tb.tune_command("timescaledb-tune", dict(INPUTS, max_connections=0), "/c")
    assert not any(a.startswith(("--max-conns", "--wal-disk-size", "--profile")) for a in argv)


def fake_runner(rc=0, out=SAMPLE_STDOUT, err=SAMPLE_STDERR, seen=None):
    def run_command(argv, environ_update):
        conf = next(a.split("=", 1)[1] for a in argv if a.startswith("--conf-path="))
        with open(conf, encoding="ascii") as handle:
            scratch = handle.read()
        if seen is not None:
            seen.append(dict(argv=argv, env=environ_update, conf=conf, scratch=scratch))
        return rc, out, err
    return run_command


def test_run_binary_uses_a_scratch_conf_and_removes_it():
    seen = []
    settings, _ = tb.run_binary(fake_runner(seen=seen), "/bin/tstune", INPUTS)
    assert dict(settings) == expected_8gb_4cpu()
    assert seen[0]["scratch"] == "shared_preload_libraries = 'timescaledb'\n"
    assert not os.path.exists(seen[0]["conf"])
    assert seen[0]["env"] == {"TSTUNE_PROFILE": ""}  # the variable decides the profile, not the environment


def test_run_binary_failure_shows_its_error():
    with pytest.raises(tb.BinaryError, match=r"exit 1.*Error: could not parse memory"):
        tb.run_binary(fake_runner(rc=1, out="", err="Error: could not parse memory\n"), "/bin/tstune", INPUTS)


def test_run_binary_without_recommendations_fails():
    with pytest.raises(tb.BinaryError, match=r"printed no recommendations.*all settings tuned"):
        tb.run_binary(fake_runner(out="", err="all settings tuned, no changes needed\n"), "/bin/tstune", INPUTS)


def test_run_binary_refuses_other_cpus_than_asked():
    with pytest.raises(tb.BinaryError, match="tuned for 4 CPUs, asked for 8"):
        tb.run_binary(fake_runner(), "/bin/tstune", dict(INPUTS, cpus=8))
