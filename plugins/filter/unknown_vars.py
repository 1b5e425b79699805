"""Reject misspelled role variables.

Argument specs check the type of the variables they know, but a misspelled
name (``postgresql_listen_adresses``) is simply never read. These filters find
such names so roles/quant_common (tasks_from: check_vars) can fail first.

quant_unknown_role_vars   names with the role's prefix that the role does not know
quant_unknown_vars_report one line per unknown name, with the closest known name (or its replacement)
quant_spec_option_names   option names of every entry point of an argument spec
"""

from __future__ import annotations

import difflib

from ansible.errors import AnsibleFilterError


def _names(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        raise AnsibleFilterError("quant_unknown_role_vars: %s must be a list of names, got a string" % what)
    try:
        return [str(name) for name in value]
    except TypeError as exc:
        raise AnsibleFilterError("quant_unknown_role_vars: %s must be a list of names: %s" % (what, exc)) from exc


def quant_unknown_role_vars(all_var_names, prefix, known_names):
    """Sorted names that start with ``prefix + '_'`` and are not in known_names.

    Internals (``__`` names) never start with the prefix, so they are ignored;
    exported facts belong in known_names.
    """
    if not prefix or not isinstance(prefix, str):
        raise AnsibleFilterError("quant_unknown_role_vars: prefix must be a non-empty role name")
    start = prefix.rstrip("_") + "_"
    known = set(_names(known_names, "known_names"))
    return sorted({name for name in _names(all_var_names, "all_var_names")
                   if name.startswith(start) and not name.startswith("__") and name not in known})


def quant_closest_var(name, known_names):
    """The known name closest to name, or '' when none is close."""
    matches = difflib.get_close_matches(str(name), sorted(_names(known_names, "known_names")), n=1, cutoff=0.6)
    return matches[0] if matches else ""


def quant_unknown_vars_report(unknown, known_names, role="", renamed=None):
    """One message line per unknown name, naming the closest known name.

    renamed maps a variable the project no longer has to what replaced it:
    the edit distance alone would point such a name at an unrelated variable.
    """
    renamed = renamed or {}
    if not isinstance(renamed, dict):
        raise AnsibleFilterError("quant_unknown_vars_report: renamed must be a dict, got %s" % type(renamed).__name__)
    lines = []
    for name in _names(unknown, "unknown"):
        if name in renamed:
            lines.append("%s: %s was replaced by %s" % (role or "role", name, renamed[name]))
            continue
        closest = quant_closest_var(name, known_names)
        hint = "did you mean %s?" % closest if closest else "no similar variable is known"
        lines.append("%s: unknown variable %s (%s)" % (role or "role", name, hint))
    return lines


def quant_spec_option_names(spec):
    """Sorted option names of every entry point of a parsed meta/argument_specs.yml."""
    if not isinstance(spec, dict) or not isinstance(spec.get("argument_specs"), dict):
        raise AnsibleFilterError("quant_spec_option_names: expected a parsed meta/argument_specs.yml")
    names = set()
    for entry in spec["argument_specs"].values():
        names.update((entry or {}).get("options") or {})
    return sorted(names)


class FilterModule:
    """Unknown-variable guard filters."""

    def filters(self):
        return {
            "quant_unknown_role_vars": quant_unknown_role_vars,
            "quant_unknown_vars_report": quant_unknown_vars_report,
            "quant_closest_var": quant_closest_var,
            "quant_spec_option_names": quant_spec_option_names,
        }
