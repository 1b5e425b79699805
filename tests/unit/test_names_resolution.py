"""Which target a source table or column lands in without an explicit mapping (module_utils/mapping/names.py)."""

from __future__ import annotations

import pytest
from ansible.module_utils.mapping.derive import MappingError
from ansible.module_utils.mapping.names import (
    MAX_IDENT_BYTES,
    NameResolutionError,
    check_identifier_length,
    check_no_fold_collision,
    resolve_name,
    unquoted_form,
)


def test_exact_name_wins_even_when_a_lower_case_form_exists():
    assert resolve_name("Album", {"Album", "album"}, "table public.Album") == ("Album", False)


def test_unquoted_lower_case_form_is_used_when_it_is_the_only_candidate():
    assert resolve_name("AlbumId", {"albumid", "title"}, "column public.album.AlbumId") == ("albumid", True)


def test_absent_name_without_case_variant_is_none():
    assert resolve_name("Genre", {"album"}, "table public.Genre") == (None, False)


def test_ambiguous_fold_names_both_candidates():
    with pytest.raises(NameResolutionError) as info:
        resolve_name("ALBUM", {"Album", "album"}, "target table public.ALBUM")
    msg = str(info.value)
    assert "Album and album" in msg and "ambiguous" in msg and "public.ALBUM" in msg


def test_explicit_name_is_never_folded_but_the_error_names_the_lower_case_candidate():
    with pytest.raises(NameResolutionError) as info:
        resolve_name("Album", {"album"}, "target table public.Album", explicit=True)
    msg = str(info.value)
    assert "public.Album does not exist" in msg and "album" in msg and "only in case" in msg


def test_a_variant_that_is_not_the_unquoted_form_is_named_not_used():
    with pytest.raises(NameResolutionError) as info:
        resolve_name("albumid", {"AlbumId"}, "column public.album.albumid")
    assert "AlbumId" in str(info.value)


def test_unquoted_form_folds_ascii_only_like_postgresql():
    assert unquoted_form("ÉtéName") == "Éténame"
    with pytest.raises(NameResolutionError) as info:  # 'été' is no unquoted form of 'Été': named, not used
        resolve_name("Été", {"été"}, "table public.Été")
    assert "été" in str(info.value)


def test_identifier_limit_counts_utf8_bytes():
    check_identifier_length("a" * MAX_IDENT_BYTES, "table")
    check_identifier_length("é" * 31 + "a", "table")  # 63 bytes
    with pytest.raises(NameResolutionError) as info:
        check_identifier_length("é" * 32, "source table x")
    msg = str(info.value)
    assert "64 bytes" in msg and "63" in msg and "é" * 32 in msg


def test_a_long_name_is_refused_when_not_found():
    long_name = "Column" + "x" * 60
    with pytest.raises(NameResolutionError) as info:
        resolve_name(long_name, {"a"}, "column public.t.%s" % long_name)
    assert long_name in str(info.value) and "NAMEDATALEN" in str(info.value)


def test_two_sources_folding_into_one_target_is_an_error_naming_both():
    with pytest.raises(NameResolutionError) as info:
        check_no_fold_collision([("name", "name", False), ("Name", "name", True)], "source columns of t:")
    assert "name and Name both resolve to name" in str(info.value)


def test_distinct_targets_and_unfolded_duplicates_pass():
    check_no_fold_collision([("A", "a", True), ("B", "b", True)], "source tables")
    check_no_fold_collision([("x", "t", False), ("y", "t", False)], "source tables")  # explicit mapping's choice


def test_name_errors_are_mapping_errors():
    assert issubclass(NameResolutionError, MappingError)
