"""Filter `quant_timescale_policies`: policy settings valid for the installed TimescaleDB.

Thin wrapper: the logic (and its unit tests) live in module_utils/schema/timescale_policies.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.schema.timescale_policies import PolicyError, resolve_policies
except ImportError:
    # Controller-side plugins do not see ansible.cfg's module_utils path; load the file directly.
    _path = Path(__file__).resolve().parents[2] / "module_utils" / "schema" / "timescale_policies.py"
    _spec = importlib.util.spec_from_file_location("quant_timescale_policies_impl", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    PolicyError, resolve_policies = _mod.PolicyError, _mod.resolve_policies


def quant_timescale_policies(compression, version, refresh_policies, on_conflict="adjust", margin=None):
    """compression | quant_timescale_policies(version, refresh_policies[, on_conflict, margin])."""
    try:
        return resolve_policies(version, refresh_policies, compression, on_conflict=on_conflict, margin=margin)
    except PolicyError as exc:
        raise AnsibleFilterError("TimescaleDB policy settings: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"quant_timescale_policies": quant_timescale_policies}
