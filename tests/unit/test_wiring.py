"""The two entry points (site.yml and playbooks/*.yml run directly) must see
the same variables; the prod inventory must parse with the example vault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def effective_config(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1")
    out = subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout)
    configs = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                msg = res.get("msg", "")
                if isinstance(msg, str) and msg.startswith("quant-config "):
                    configs[host] = json.loads(msg[len("quant-config "):])
    assert configs, "show_config printed nothing"
    return configs


def test_playbook_run_directly_sees_the_same_variables_as_site():
    direct = effective_config("-i", "inventories/dev", "playbooks/show_config.yml")
    via_site = effective_config("-i", "inventories/dev", "site.yml", "--tags", "config")
    assert direct == via_site
    assert direct["localhost"]["postgresql_version"] == 15
    assert direct["localhost"]["quant_db_name"] == "quant_platform"
    assert direct["localhost"]["quant_reports_dir"] == str(ROOT / "reports")
    assert direct["localhost"]["postgresql_ssl"] is False
    assert direct["localhost"]["postgresql_listen_addresses"] == ["localhost"]


def test_prod_inventory_overrides_shared_defaults_and_decrypts_the_example_vault():
    prod = effective_config("-i", "inventories/prod",
                            "--vault-password-file", "inventories/prod/vault-password.example",
                            "playbooks/show_config.yml", "--connection", "local",
                            "-e", "ansible_python_interpreter=" + sys.executable, "-e", "ansible_become=false")
    (host,) = prod.values()
    assert host["quant_environment"] == "prod"
    assert host["quant_db_name"] == "quant_platform"
    assert host["postgresql_ssl"] is True
    # localhost and the host's private address (hosts.yml), never all interfaces.
    assert host["postgresql_listen_addresses"] == ["localhost", "10.20.0.11"]
