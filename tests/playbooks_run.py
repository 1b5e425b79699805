"""The one way tests run `ansible-playbook` (issue 19, item 8).

Every run uses the virtualenv's ansible-playbook (next to this Python), the repository root as
its working directory (so ansible.cfg, roles/, library/ and module_utils/ resolve as for a user),
no standard input and no colour. Extra vars are written to a private JSON file (mode 0600, in a
0700 directory removed after the run) and passed as `-e @file`: never on the command line, where
any process on the machine could read a password.

    from playbooks_run import run_playbook, one_play
    out = run_playbook("playbooks/validate.yml", extra_vars={...}, env={"PGPASSWORD": pw}, check=True)
    assert out.rc == 0, out.tail()
    assert out.recap["localhost"]["changed"] == 0

`start_playbook` returns the running process (for tests that kill it or wait on the database
while it runs); `.wait()` gives the same `PlaybookResult` as `run_playbook`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
DEV_INVENTORY = "inventories/dev"
TIMEOUT = 1800  # seconds; the longest run (site.yml on a fresh host) stays well below
JSON_CALLBACK = "ansible.posix.json"
RECAP_LINE = re.compile(r"^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$", re.M)
COUNTS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")


class PlaybookTimeout(AssertionError):
    """ansible-playbook did not finish in time (its process group was killed)."""


def ansible_env(env=None, json_output=False):
    """os.environ plus the settings every test run needs; `env` adds to it (a None value unsets)."""
    out = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_RETRY_FILES_ENABLED="0", PYTHONUNBUFFERED="1")
    out.pop("PGPASSWORD", None)  # a test names the password it means to use
    if json_output:
        out["ANSIBLE_STDOUT_CALLBACK"] = JSON_CALLBACK
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def one_play(tasks=None, workdir=None, name="play", roles=None, play_vars=None):
    """Write a one-play playbook on localhost (no facts) and return its path.

    `workdir` defaults to a fresh temporary directory; the file name is unique in it."""
    play = {"name": name, "hosts": "localhost", "gather_facts": False}
    if play_vars:
        play["vars"] = play_vars
    if roles is not None:
        play["roles"] = roles
    play["tasks"] = tasks or []
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="play-"))
    path = folder / ("%s-%s.yml" % (name.replace(" ", "_"), uuid.uuid4().hex[:6]))
    path.write_text(json.dumps([play]))
    return path


def parse_recap(text):
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from the PLAY RECAP
    of the default callback, or from the "stats" of the json one; {} when there is none."""
    stats = _json_document(text)
    if stats is not None and isinstance(stats.get("stats"), dict):
        return {host: {k: int(v.get(k, 0)) for k in COUNTS} for host, v in stats["stats"].items()}
    at = text.rfind("PLAY RECAP")
    recap = {}
    for host, counts in RECAP_LINE.findall(text[at:] if at >= 0 else ""):
        pairs = dict(item.split("=") for item in counts.split())
        recap[host] = {k: int(pairs.get(k, 0)) for k in COUNTS}
    return recap


def _json_document(text):
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


class PlaybookResult:
    """rc, stdout, stderr, seconds and the recap of one finished run."""

    def __init__(self, cmd, rc, stdout, stderr, seconds):
        self.cmd, self.rc, self.stdout, self.stderr, self.seconds = cmd, rc, stdout, stderr, seconds
        self.recap = parse_recap(stdout)

    @property
    def returncode(self):  # subprocess.CompletedProcess's name, for tests written against it
        return self.rc

    @property
    def output(self):
        return self.stdout + "\n" + self.stderr

    @property
    def changed(self):
        return sum(h["changed"] for h in self.recap.values())

    @property
    def failed(self):
        return sum(h["failed"] + h["unreachable"] for h in self.recap.values())

    def tail(self, chars=4000):
        """The end of both streams, for an assertion message."""
        return "%s\n--- stderr ---\n%s" % (self.stdout[-chars:], self.stderr[-chars // 2:])

    def document(self):
        """The json callback's document (json_output=True); fails naming the output when absent."""
        doc = _json_document(self.stdout)
        if doc is None or "plays" not in doc:
            raise AssertionError("ansible-playbook did not print its JSON result:\n%s" % self.tail(3000))
        return doc

    def task_results(self):
        """(play name, task name, host, result) for every task result, in order (json_output=True)."""
        return [(play["play"]["name"], task["task"]["name"], host, res)
                for play in self.document()["plays"] for task in play["tasks"]
                for host, res in task["hosts"].items()]

    def results(self, host="localhost"):
        """{task name: result} on one host (json_output=True); a later task of the same name wins."""
        return {task: res for _play, task, name, res in self.task_results() if name == host}


class RunningPlaybook:
    """A started ansible-playbook: `.proc` is the Popen, `.wait()` the PlaybookResult."""

    def __init__(self, cmd, proc, vars_dir, log):
        self.cmd, self.proc, self._vars_dir, self._log = cmd, proc, vars_dir, log
        self.started = time.monotonic()

    def wait(self, timeout=TIMEOUT):
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PlaybookTimeout("ansible-playbook %s did not finish within %d s"
                                  % (" ".join(self.cmd[1:]), timeout)) from None
        finally:
            self._cleanup()
        if self._log is not None:
            stdout, stderr = Path(self._log[0]).read_text(encoding="utf-8", errors="replace"), ""
        return PlaybookResult(self.cmd, self.proc.returncode, stdout or "", stderr or "",
                              time.monotonic() - self.started)

    def kill(self):
        """SIGKILL the whole process group (ansible-playbook and its module processes)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.communicate()
        self._cleanup()

    def _cleanup(self):
        if self._log is not None and not self._log[1].closed:
            self._log[1].close()
        if self._vars_dir is not None:
            shutil.rmtree(self._vars_dir, ignore_errors=True)
            self._vars_dir = None


def _vars_file(extra_vars):
    folder = tempfile.mkdtemp(prefix="ansible-vars-")  # mode 0700
    path = Path(folder) / "vars.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(extra_vars, fh)
    return folder, path


def start_playbook(playbook, *args, inventory=None, extra_vars=None, env=None, check=False, json_output=False,
                   log=None):
    """Start ansible-playbook on `playbook` (a path, relative ones from the repository root).

    inventory: a path (default: ansible.cfg's, the dev inventory); extra_vars: a dict passed
    through a private JSON file; env: added to the environment (see ansible_env); check: --check;
    json_output: the json stdout callback (see PlaybookResult.results); log: a path that gets
    stdout and stderr together (then `stdout` is the log's text); args: more ansible-playbook
    options (e.g. "-vvv", "--diff")."""
    cmd = [str(ANSIBLE_PLAYBOOK)]
    if inventory is not None:
        cmd += ["-i", str(inventory)]
    cmd.append(str(playbook))
    vars_dir = None
    if extra_vars is not None:
        vars_dir, path = _vars_file(extra_vars)
        cmd += ["-e", "@%s" % path]
    if check:
        cmd.append("--check")
    cmd += [str(a) for a in args]
    handle = None
    if log is not None:
        handle = (log, open(log, "w", encoding="utf-8"))
    out = handle[1] if handle else subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=ansible_env(env, json_output), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT if handle else subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    return RunningPlaybook(cmd, proc, vars_dir, handle)


def run_playbook(playbook, *args, timeout=TIMEOUT, **options):
    """Run ansible-playbook to the end (options as start_playbook) and return its PlaybookResult;
    raises PlaybookTimeout (an AssertionError) after `timeout` seconds."""
    return start_playbook(playbook, *args, **options).wait(timeout=timeout)
