"""The converge benchmark's plain SLS: Salt's own states of the formula's show_sls, with the
formula's database.yaml state written as a plain file.managed."""

import pytest

from bench import converge


def _show_sls():
    return {
        "crane-config-file-database-file-managed": {
            "__sls__": "crane.config.file",
            "__env__": "base",
            "crane": [
                {"name": "/etc/crane/database.yaml"},
                {"user": "crane"},
                {"mode": "0600"},
                {"require": [{"sls": "crane.package.user"}]},
                "database_file",
                {"order": 10},
            ],
        },
        "crane-service-cranectld-running": {
            "__sls__": "crane.service",
            "service": [
                "running",
                {"name": "cranectld"},
                {"watch": [{"crane": "crane-config-file-database-file-managed"}]},
                {"require": [{"crane": "crane-config-valid"}]},
            ],
        },
        "crane-config-valid": {"crane": ["config_valid", {"name": "cluster"}]},
    }


def test_plain_sls_writes_database_yaml_with_the_nodes_content():
    files = {"/etc/crane/database.yaml": "DbUser: admin\n"}
    plain = converge.plain_states(_show_sls(), files)
    assert set(plain) == {
        "crane-config-file-database-file-managed",
        "crane-service-cranectld-running",
    }
    args = plain["crane-config-file-database-file-managed"]["file"]
    assert args[0] == "managed"
    options = {k: v for a in args[1:] for k, v in a.items()}
    assert options["contents"] == "DbUser: admin\n"
    assert (options["user"], options["group"], options["mode"]) == ("crane", "crane", "0600")
    assert options["show_changes"] is False
    assert "require" not in options  # it named an SLS the plain file does not have
    service = plain["crane-service-cranectld-running"]["service"]
    assert {"watch": [{"file": "crane-config-file-database-file-managed"}]} in service
    assert not [a for a in service if isinstance(a, dict) and "require" in a]


def test_plain_sls_needs_the_database_file_content():
    assert converge.file_paths(_show_sls()) == ["/etc/crane/database.yaml"]
    with pytest.raises(RuntimeError, match=r"database\.yaml"):
        converge.plain_states(_show_sls(), {})
