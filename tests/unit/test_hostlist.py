"""crane_hostlist: CraneSched's ParseHostList / HostNameListToStr, rule by rule.

Expected values come from CraneSched's own unit test (test/Utilities/PublicHeader_test.cpp),
the reference examples, and the behaviour of CraneSched's String.cpp.
"""

import pathlib
import random

import crane_hostlist
import pytest
from crane_hostlist import HostListError, compress, expand

# CraneSched's HostNameListToStr unit test: 105,000 hosts that fold back to the expression.
CRANE_TEST_EXPR = "a[01-99]s[01-05]c[001-100],a[30-40,501-600]s[03-07]c[201-300]"


# ----------------------------------------------------------------------------- expand


def test_cranesched_parse_vector():
    assert expand("aaa[1-2,3],bbb") == ["aaa1", "aaa2", "aaa3", "bbb"]


def test_cranesched_large_vector_expands_in_order():
    hosts = expand(CRANE_TEST_EXPR)
    assert len(hosts) == 99 * 5 * 100 + 111 * 5 * 100
    assert hosts[:3] == ["a01s01c001", "a01s01c002", "a01s01c003"]
    assert hosts[100] == "a01s02c001"  # left group varies slowest
    assert hosts[49_499] == "a99s05c100"
    assert hosts[49_500] == "a30s03c201"
    assert hosts[-1] == "a600s07c300"


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("cn[01, 03-05, 11]", ["cn01", "cn03", "cn04", "cn05", "cn11"]),
        (" cn01 , cn 02 ", ["cn01", "cn02"]),
        ("c n [ 1 - 2 ]", ["cn1", "cn2"]),
    ],
)
def test_every_space_is_removed_first(expr, hosts):
    assert expand(expr) == hosts


def test_tabs_are_not_removed_only_stripped_from_items():
    assert expand("cn01,\tcn02\t") == ["cn01", "cn02"]
    assert expand("c\tn1") == ["c\tn1"]
    with pytest.raises(HostListError, match="bad bracket body"):
        expand("cn[1,\t2]")


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("cn01,,cn02", ["cn01", "cn02"]),
        (",cn01,", ["cn01"]),
        (",,,", []),
        (" , ,", []),
        ("", []),
    ],
)
def test_empty_items_are_skipped(expr, hosts):
    assert expand(expr) == hosts


def test_commas_inside_brackets_do_not_split_items():
    assert expand("a[1,3]b,c[2,4]") == ["a[1,3]b", "c2", "c4"]


@pytest.mark.parametrize(
    "expr", ["cn[01-02]-ib", "node[1-3]gpu", "cn[1-2]:8080", "[1-3]cn", "cn[1-2]x.y", "a[1]b[2-3]c"]
)
def test_item_not_ending_in_bracket_or_dot_suffix_is_kept_literally(expr):
    assert expand(expr) == [expr]


def test_literal_items_are_not_checked_for_bad_bodies():
    assert expand("cn[abc]-x,cn1") == ["cn[abc]-x", "cn1"]


def test_item_with_a_newline_is_kept_literally():
    assert expand("cn\n[1-2]") == ["cn\n[1-2]"]


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("cn[1-2].ib", ["cn1.ib", "cn2.ib"]),
        ("cn[1-2].cluster.local", ["cn1.cluster.local", "cn2.cluster.local"]),
        ("cn[1-2].", ["cn1.", "cn2."]),
        ("cn[1-2]..x", ["cn1..x", "cn2..x"]),
        ("cn[1-2].ib[3]x", ["cn1.ib3x", "cn2.ib3x"]),
        ("a.b[1-2]", ["a.b1", "a.b2"]),
    ],
)
def test_dot_suffix_after_bracket_is_expanded(expr, hosts):
    assert expand(expr) == hosts


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("r[1-2]n[1-3]", ["r1n1", "r1n2", "r1n3", "r2n1", "r2n2", "r2n3"]),
        ("r[1-2]n[1-2].ib", ["r1n1.ib", "r1n2.ib", "r2n1.ib", "r2n2.ib"]),
        ("[1-2][3-4]", ["13", "14", "23", "24"]),
        ("a[5-3]b[1-2]", []),
    ],
)
def test_bracket_groups_form_a_cartesian_product_left_slowest(expr, hosts):
    assert expand(expr) == hosts


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("cn[001-10]", [f"cn{n:03d}" for n in range(1, 11)]),
        ("cn[1-010]", [f"cn{n}" for n in range(1, 11)]),
        ("cn[08-11]", ["cn08", "cn09", "cn10", "cn11"]),
        ("cn[099-101]", ["cn099", "cn100", "cn101"]),
        ("cn[9-10]", ["cn9", "cn10"]),
    ],
)
def test_range_padding_is_the_width_of_the_start_string(expr, hosts):
    assert expand(expr) == hosts


def test_single_numbers_are_copied_verbatim():
    assert expand("cn[007,7,0]") == ["cn007", "cn7", "cn0"]
    assert expand("cn[18446744073709551616]") == ["cn18446744073709551616"]


def test_prefix_may_be_empty():
    assert expand("[1-3]") == ["1", "2", "3"]


def test_reversed_range_gives_nothing():
    assert expand("cn[5-3]") == []
    assert expand("cn[5-3,7]") == ["cn7"]


def test_duplicates_are_kept_in_order():
    assert expand("cn[0-2,1]") == ["cn0", "cn1", "cn2", "cn1"]
    assert expand("cn1,cn1") == ["cn1", "cn1"]


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("cn[[1]]", "duplicate brackets"),
        ("cn[1[2]]", "duplicate brackets"),
        ("a[1[2", "duplicate brackets"),
        ("cn1-2]", "isolated bracket"),
        ("cn[1-2", "isolated bracket"),
        ("cn[1-2]]", "isolated bracket"),
        ("a]b[[", "isolated bracket"),
        ("cn[x],a]", "isolated bracket"),  # the whole string is checked before any body
        ("cn[]", "bad bracket body"),
        ("[]", "bad bracket body"),
        ("cn[a]", "bad bracket body"),
        ("cn[-1]", "bad bracket body"),
        ("cn[1-]", "bad bracket body"),
        ("cn[1,,2]", "bad bracket body"),
        ("cn[1-2-3]", "bad bracket body"),
        ("cn[\u0661-\u0662]", "bad bracket body"),  # non-ASCII digits are not \d in RE2
        ("cn[18446744073709551616-18446744073709551617]", "bad bracket body"),
    ],
)
def test_errors_name_the_expression_and_the_reason(expr, reason):
    with pytest.raises(HostListError, match=reason) as info:
        expand(expr)
    assert info.value.expr == expr
    assert repr(expr) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_max_hosts_bounds_the_expansion():
    assert len(expand("cn[1-100]", max_hosts=100)) == 100
    with pytest.raises(HostListError, match="more than 99 hosts"):
        expand("cn[1-100]", max_hosts=99)
    with pytest.raises(HostListError, match="more than 10 hosts"):
        expand("r[1-4]n[1-4]", max_hosts=10)
    with pytest.raises(HostListError, match="more than 2 hosts"):
        expand("a,b,c", max_hosts=2)


def test_max_hosts_refuses_a_huge_range_before_building_it():
    with pytest.raises(HostListError, match="more than 1000 hosts"):
        expand("cn[1-99999999999999]", max_hosts=1000)


def test_expand_rejects_non_strings():
    with pytest.raises(TypeError):
        expand(["cn1"])


def test_percent_signs_in_names_survive_range_formatting():
    assert expand("a%d[1-2]%s") == ["a%d[1-2]%s"]
    assert expand("a%d[1-2].%s") == ["a%d1.%s", "a%d2.%s"]


# ----------------------------------------------------------------------------- compress


def test_cranesched_large_vector_folds_back_to_the_expression():
    assert compress(expand(CRANE_TEST_EXPR)) == CRANE_TEST_EXPR


@pytest.mark.parametrize(
    ("names", "text"),
    [
        ([], ""),
        (["cn5"], "cn5"),
        (["cn1", "cn2", "cn3", "cn5", "gpu01", "gpu02", "login"], "cn[1-3,5],gpu[01-02],login"),
        (["x9", "x10", "x11", "x13"], "x[9-11,13]"),
        (["cn1.ib", "cn2.ib"], "cn[1-2].ib"),
        (["n1x", "n2x", "n3y"], "n[1-2]x,n3y"),
        (["login", "admin"], "admin,login"),
    ],
)
def test_compress_basic_forms(names, text):
    assert compress(names) == text


def test_a_single_host_is_returned_but_loses_single_number_brackets():
    assert compress(["cn[5]"]) == "cn5"
    assert compress(["a[b]"]) == "ab"
    assert compress(["a[1-2]"]) == "a[1-2]"


def test_duplicates_are_folded_once():
    assert compress(["cn1", "cn1"]) == "cn1"
    assert compress(["cn3", "cn1", "cn2", "cn2"]) == "cn[1-3]"


def test_result_is_sorted_lexicographically_and_joined_without_spaces():
    assert compress(["gpu1", "b1", "a1", "a2"]) == "a[1-2],b1,gpu1"
    assert compress(["cn1", "CN1", "_x"]) == "CN1,_x,cn1"


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["1a", "2a"], "1a,2a"),
        (["12", "13"], "1[2-3]"),
        (["123", "124"], "1[23-24]"),
    ],
)
def test_a_digit_at_index_zero_never_starts_a_number(names, text):
    assert compress(names) == text


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["r1n1", "r1n2", "r2n1", "r2n2"], "r[1-2]n[1-2]"),
        (["r1n1", "r1n2", "r2n1"], "r[1-2]n1,r1n2"),
        (["a1b2", "a1b3"], "a1b[2-3]"),
        (["r1n1", "r2n2"], "r1n1,r2n2"),
    ],
)
def test_later_passes_fold_the_next_bare_number(names, text):
    assert compress(names) == text


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["cn9", "cn10"], "cn[9-10]"),
        (["cn09", "cn10"], "cn[09-10]"),
        (["cn10", "cn9", "cn100"], "cn[9-10,100]"),
        (["cn1", "cn01"], "cn[1,01]"),
        (["cn2", "cn001"], "cn[2,001]"),
        (["cn9", "cn010"], "cn[9-010]"),  # re-expands to cn9,cn10: CraneSched's own output
    ],
)
def test_numbers_sort_by_length_then_value_and_runs_keep_their_strings(names, text):
    assert compress(names) == text


def test_empty_names_are_dropped_unless_alone():
    assert compress(["", "cn1"]) == "cn1"
    assert compress(["", "login"]) == "login"
    assert compress(["", ""]) == ""
    assert compress([""]) == ""


def test_names_with_brackets_follow_cranesched_scan():
    assert compress(["a]1", "a]2"]) == "a]1,a]2"  # a stray ']' hides what follows
    assert compress(["a1[2]3b", "a2b"]) == "a[2,1[2]3]b"  # the run takes the glued bracket
    assert compress(["a[1-2]", "b"]) == "a[1-2],b"


def test_group_key_splits_at_the_first_less_than_sign():
    # CraneSched keys groups as prefix + "<" + suffix, so these two share a group.
    assert compress(["a<b1c", "a1b<c"]) == "a1b<c"


def test_numbers_beyond_32_bits_fold():
    assert compress(["n4294967296", "n4294967297"]) == "n[4294967296-4294967297]"


def test_compress_accepts_any_iterable_but_not_a_string():
    assert compress(f"cn{n}" for n in (1, 2)) == "cn[1-2]"
    with pytest.raises(TypeError):
        compress("cn1")


# ----------------------------------------------------------------------------- properties

RNG_SEED = 20261129
PREFIXES = ["cn", "gpu", "node-", "rack_a", "x", "Cn", "fat.node"]
SUFFIXES = ["", "", ".ib", ".cluster.local", ".a-b"]


def _random_names(rng, families):
    """Names ``prefix + fixed-width number (+ .suffix)``, one width per prefix, shuffled."""
    names = []
    for prefix in rng.sample(PREFIXES, families):
        suffix = rng.choice(SUFFIXES)
        width = rng.randint(1, 4)
        top = 10**width - 1
        start = rng.randint(0, top)
        for _ in range(rng.randint(1, 60)):
            number = min(top, start + rng.randint(0, 40))
            names.append(f"{prefix}{number:0{width}d}{suffix}")
    rng.shuffle(names)
    return names


def test_round_trip_gives_the_sorted_unique_names():
    rng = random.Random(RNG_SEED)
    for _ in range(300):
        names = _random_names(rng, rng.randint(1, 4))
        assert sorted(expand(compress(names))) == sorted(set(names))


def test_round_trip_of_one_family_is_in_sorted_order():
    rng = random.Random(RNG_SEED + 1)
    for _ in range(200):
        names = _random_names(rng, 1)
        assert expand(compress(names)) == sorted(set(names))


def test_any_suffix_reads_cranesched_output_back():
    assert expand("cn[01-02]-ib,node[1-2]gpu", any_suffix=True) == [
        "cn01-ib",
        "cn02-ib",
        "node1gpu",
        "node2gpu",
    ]
    assert expand("cn[1-2].ib,login", any_suffix=True) == ["cn1.ib", "cn2.ib", "login"]
    with pytest.raises(HostListError, match="bad bracket body"):
        expand("cn[x]-ib", any_suffix=True)


def test_multi_number_names_round_trip_only_with_any_suffix():
    rng = random.Random(RNG_SEED + 4)
    for _ in range(200):
        racks, nodes = rng.sample(range(1, 30), rng.randint(1, 8)), rng.sample(range(1, 80), 9)
        names = [f"r{r:02d}n{n:02d}" for r in racks for n in nodes if rng.random() < 0.7]
        names = names or ["r01n01"]
        assert sorted(expand(compress(names), any_suffix=True)) == sorted(set(names))
    # CraneSched's own parser keeps such a group literally (reference 3.2):
    assert compress(["r01n05", "r02n05", "r01n06"]) == "r[01-02]n05,r01n06"
    assert expand("r[01-02]n05,r01n06") == ["r[01-02]n05", "r01n06"]


def _random_name(rng):
    """Letters, numbers, '<', bracket groups after letters, now and then a stray bracket."""
    parts = []
    for _ in range(rng.randint(1, 4)):
        parts.append(rng.choice(["a", "b", "<", ".", "-", "a[1-2]", "b[3]", "", ""]))
        parts.append(rng.choice(["", "0", "1", "7", "01", "10"]))
    if rng.random() < 0.02:
        parts.insert(rng.randint(0, len(parts)), rng.choice("[]"))
    return "".join(parts) or "x"


def test_fast_and_general_grouping_agree():
    rng = random.Random(RNG_SEED + 2)
    compared = 0
    for _ in range(500):
        names = [_random_name(rng) for _ in range(rng.randint(2, 12))]
        fast = crane_hostlist._group_lines("\n".join(names))
        if fast is not None:  # None: some name needs CraneSched's character scan
            assert fast == crane_hostlist._group_any_names(names)
            compared += 1
    assert compared > 250


def test_single_bracket_removal_matches_the_step_by_step_edit():
    rng = random.Random(RNG_SEED + 3)
    for _ in range(2000):
        text = "".join(rng.choice("a1-,[]") for _ in range(rng.randint(0, 12)))
        expected = crane_hostlist._drop_single_brackets_literally(text)
        assert crane_hostlist._drop_single_brackets(text) == expected


# ----------------------------------------------------------------------------- Salt loader


def test_salt_loader_exposes_expand_and_compress(tmp_path):
    salt_config = pytest.importorskip("salt.config")
    salt_loader = pytest.importorskip("salt.loader")
    opts = salt_config.minion_config(None)
    opts["utils_dirs"] = [str(pathlib.Path(crane_hostlist.__file__).parent)]
    opts["extension_modules"] = str(tmp_path)
    utils = salt_loader.utils(opts, whitelist=["crane_hostlist"])
    assert utils["crane_hostlist.expand"]("cn[1-2]") == ["cn1", "cn2"]
    assert utils["crane_hostlist.compress"](["cn1", "cn2"]) == "cn[1-2]"
