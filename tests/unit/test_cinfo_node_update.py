"""Arguments for, and output of, ``ccontrol update nodename=… state=drain|resume``."""

import crane_cinfo
import pytest


def test_drain_args_quote_the_reason():
    args = crane_cinfo.node_update_args(["cn02", "cn01"], "DRAIN", "upgrade to 1.1.3 (salt)")
    assert args == [
        "update",
        "nodename=cn[01-02]",
        "state=drain",
        'reason="upgrade to 1.1.3 (salt)"',
    ]


def test_resume_args_from_host_list():
    assert crane_cinfo.node_update_args("cn[01-03]", "resume") == [
        "update",
        "nodename=cn[01-03]",
        "state=resume",
        'reason=""',
    ]


def test_resume_ignores_a_reason():
    assert crane_cinfo.node_update_args("cn01", "resume", "x") == [
        "update",
        "nodename=cn01",
        "state=resume",
        'reason=""',
    ]


@pytest.mark.parametrize(
    ("nodes", "state", "reason", "message"),
    [
        ("cn01", "drain", None, "needs a reason"),
        ("cn01", "drain", "  ", "needs a reason"),
        ("cn01", "drain", 'say "hi"', "double quote"),
        ("cn01", "drain", "two\nlines", "line break"),
        ("cn01", "sleep", None, "must be one of drain, resume"),
        ([], "resume", None, "no node given"),
        ("cn[01-02", "resume", None, "invalid host list"),
    ],
)
def test_invalid_update(nodes, state, reason, message):
    with pytest.raises(ValueError, match=message):
        crane_cinfo.node_update_args(nodes, state, reason)


def test_parse_success():
    text = (
        "Nodes cn01, cn02 modified successfully, please wait for a few minutes for the node"
        " state to fully update.\n"
    )
    assert crane_cinfo.parse_node_update(text) == {"modified": ["cn01", "cn02"], "failed": {}}


def test_parse_partial_failure():
    text = (
        "Nodes cn01 modified successfully, please wait for a few minutes for the node state"
        " to fully update.\n"
        "change node state failed: Failed to modify node: cn02.example.org. Reason: Can't change"
        " the state of a DOWN node!.\n"
        "Failed to modify node: cn03. Reason: Invalid node name specified..\n"
    )
    assert crane_cinfo.parse_node_update(text) == {
        "modified": ["cn01"],
        "failed": {
            "cn02.example.org": "Can't change the state of a DOWN node!",
            "cn03": "Invalid node name specified.",
        },
    }


def test_parse_unrelated_output():
    text = "Failed to modify node state: Connection to CraneCtld is broken.\n"
    assert crane_cinfo.parse_node_update(text) == {"modified": [], "failed": {}}


def test_names_that_do_not_survive_compression_are_listed():
    args = crane_cinfo.node_update_args(["cn2-ib", "cn1-ib"], "resume")
    assert args[1] == "nodename=cn1-ib,cn2-ib"
