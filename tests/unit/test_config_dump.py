"""crane_config.dump: the same bytes for equal data."""

import datetime

import crane_config


def test_repeated_dump_gives_the_same_text():
    config = {"Nodes": [{"memory": "2G", "name": "cn[01-02]", "cpu": 2}], "ClusterName": "c"}
    first = crane_config.dump(config, header="# header")
    assert crane_config.dump(config, header="# header") == first
    assert first.startswith("# header\nClusterName: c\n")
    assert crane_config.dump(config) == first.removeprefix("# header\n")


def test_values_that_print_alike_are_not_confused():
    texts = [
        crane_config.dump({"a": value})
        for value in (1, "1", True, "True", 1.0, None, "null", datetime.date(2026, 1, 2))
    ]
    assert len(set(texts)) == len(texts)
    assert crane_config.dump({1: "x"}) != crane_config.dump({"1": "x"})


def test_changed_data_is_dumped_again():
    config = {"Nodes": [{"name": "cn01", "cpu": 2, "memory": "2G"}]}
    before = crane_config.dump(config)
    config["Nodes"][0]["cpu"] = 4
    after = crane_config.dump(config)
    assert "cpu: 4" in after
    assert after != before
