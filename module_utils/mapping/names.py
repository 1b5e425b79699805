"""Which target table or column a SQLite name lands in when the mapping does not name it.

A PostgreSQL schema written without quotes (by hand, or by a tool such as pgloader)
lower-cases every name, so SQLite's ``Album.AlbumId`` becomes ``album.albumid``.
The rule, for a name the mapping does not give explicitly:

1. the exact name, when the target has it;
2. else its unquoted (lower-case) form, when the target has that form and no other
   spelling of the name differing only in case (which one was meant is a guess);
3. else an error that names every target spelling differing only in case.

A name the mapping gives explicitly (``target:``, a ``columns`` rename) is exact:
never folded, but the error still names the case variants the target has. Two
source names folding into one target name is an error naming both. Names longer
than PostgreSQL's identifier limit are refused up front: a tool creating them
would truncate them silently, so no target can carry them exactly.
"""

from __future__ import annotations

from ansible.module_utils.mapping.derive import MappingError

# PostgreSQL's NAMEDATALEN - 1, counted in bytes of UTF-8 (not characters).
MAX_IDENT_BYTES = 63


# PostgreSQL folds only ASCII letters of an unquoted identifier in a UTF-8 database
# (downcase_identifier); str.lower() would also fold 'É', which PostgreSQL keeps.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def unquoted_form(name):
    """The name PostgreSQL stores for `name` written without quotes."""
    return name.translate(_ASCII_LOWER)


class NameResolutionError(MappingError):
    """A source name has no unambiguous target name."""


def check_identifier_length(name, what):
    """Refuse a name PostgreSQL cannot hold exactly (over 63 bytes of UTF-8)."""
    size = len(name.encode("utf-8"))
    if size > MAX_IDENT_BYTES:
        cut = name.encode("utf-8")[:MAX_IDENT_BYTES].decode("utf-8", "ignore")
        raise NameResolutionError(
            "%s %r is %d bytes in UTF-8; PostgreSQL identifiers hold at most %d bytes (NAMEDATALEN-1), so no "
            "target can have this name (PostgreSQL would truncate it to %r); name the target explicitly in the "
            "mapping" % (what, name, size, MAX_IDENT_BYTES, cut))


def case_variants(name, existing):
    """Names of `existing` equal to `name` but for case (the name itself excluded), sorted."""
    folded = name.casefold()
    return sorted(n for n in existing if n != name and n.casefold() == folded)


def resolve_name(name, existing, what, explicit=False):
    """(target name, folded) for `name` among `existing` target names, or (None, False) when absent.

    what: "table public.Album" / "column Album.Title" (for messages). explicit: the
    mapping named it, so it is matched exactly. Raises NameResolutionError for an
    ambiguous name, a name over the length limit, or an explicit name whose only
    matches differ in case.
    """
    if name in existing:
        return name, False
    check_identifier_length(name, what)
    variants = case_variants(name, existing)
    lower = unquoted_form(name)
    if not explicit and variants == [lower]:
        return lower, True
    if not explicit and lower in variants:
        raise NameResolutionError(
            "%s does not exist and its unquoted (lower-case) form is ambiguous: the target has %s; name the one "
            "meant explicitly in the mapping" % (what, " and ".join(variants)))
    if variants:
        raise NameResolutionError(
            "%s does not exist; the target has %s, which differ%s only in case: name it exactly in the mapping"
            % (what, " and ".join(variants), "s" if len(variants) == 1 else ""))
    return None, False


def check_no_fold_collision(pairs, what):
    """pairs: (source name, target name, folded). Two sources landing in one target, one of them by
    folding, is ambiguous: which source's values belong there is a guess."""
    seen = {}
    for source, target, folded in pairs:
        other = seen.get(target)
        if other is not None and (folded or other[1]):
            raise NameResolutionError(
                "%s %s and %s both resolve to %s (PostgreSQL's unquoted lower-case form); map one of them "
                "explicitly" % (what, other[0], source, target))
        seen.setdefault(target, (source, folded))
