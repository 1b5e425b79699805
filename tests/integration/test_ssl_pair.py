"""The postgresql role refuses a TLS certificate and key that do not belong together.

Runs the role's ssl_pair tasks with ansible-playbook on localhost and real
openssl; no PostgreSQL is involved (the check happens before anything is
installed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playbooks_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the pair
      ansible.builtin.include_role:
        name: postgresql
        tasks_from: ssl_pair
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """cert.pem with its key.pem, an unrelated other.pem key, an encrypted key and a non-key file."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=db.example",
            "-keyout", "key.pem", "-out", "cert.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.pem", cwd=d)
    openssl("pkey", "-in", "key.pem", "-aes256", "-passout", "pass:secret", "-out", "encrypted.pem", cwd=d)
    (d / "garbage.pem").write_text("not a key\n")
    return d


def play(tmp_path, *args, **extra):
    book = tmp_path / "pair.yml"
    book.write_text(PLAY)
    defaults = {"postgresql_ssl_key_src": "", "postgresql_ssl_key_content": ""}
    return run_playbook(book, *args, extra_vars={**defaults, **extra})


def body(pem):
    """The base64 lines of a PEM file: what must never show in the output."""
    return [line for line in pem.read_text().splitlines() if line and not line.startswith("-----")]


def test_matching_pair_from_a_file_passes(pki, tmp_path):
    out = play(tmp_path, postgresql_ssl_cert_src=str(pki / "cert.pem"), postgresql_ssl_key_src=str(pki / "key.pem"))
    assert out.returncode == 0, out.stdout[-3000:]
    assert "changed=0" in out.stdout


def test_matching_pair_from_vault_content_passes(pki, tmp_path):
    out = play(tmp_path, postgresql_ssl_cert_src=str(pki / "cert.pem"),
               postgresql_ssl_key_content=(pki / "key.pem").read_text())
    assert out.returncode == 0, out.stdout[-3000:]
    assert not any(line in out.stdout for line in body(pki / "key.pem"))


@pytest.mark.parametrize("key, expected", [
    ("other.pem", "does not belong to the certificate"),
    ("encrypted.pem", "is not an unencrypted PEM private key"),
    ("garbage.pem", "is not an unencrypted PEM private key"),
])
def test_bad_key_fails_naming_the_inputs(pki, tmp_path, key, expected):
    out = play(tmp_path, postgresql_ssl_cert_src=str(pki / "cert.pem"), postgresql_ssl_key_src=str(pki / key))
    assert out.returncode != 0
    assert expected in out.stdout, out.stdout[-3000:]
    assert str(pki / key) in out.stdout and "nothing was installed" in out.stdout
    assert not any(line in out.stdout for line in body(pki / "key.pem"))
    if key == "other.pem":
        assert str(pki / "cert.pem") in out.stdout


def test_key_content_mismatch_never_shows_the_key_and_fails_in_check_mode(pki, tmp_path):
    out = play(tmp_path, "--check", postgresql_ssl_cert_src=str(pki / "cert.pem"),
               postgresql_ssl_key_content=(pki / "other.pem").read_text())
    assert out.returncode != 0
    assert "the private key in postgresql_ssl_key_content does not belong" in out.stdout, out.stdout[-3000:]
    assert not any(line in out.stdout for line in body(pki / "other.pem"))


def test_a_key_given_as_certificate_is_named(pki, tmp_path):
    out = play(tmp_path, postgresql_ssl_cert_src=str(pki / "key.pem"), postgresql_ssl_key_src=str(pki / "key.pem"))
    assert out.returncode != 0
    assert "postgresql_ssl_cert_src %s is not a PEM certificate" % (pki / "key.pem") in out.stdout, out.stdout[-3000:]
    assert not any(line in out.stdout for line in body(pki / "key.pem"))
