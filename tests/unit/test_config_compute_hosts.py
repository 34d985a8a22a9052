"""crane_config.compute_hosts: config order, each host once, linear in the cluster size."""

import crane_config


def test_hosts_in_config_order_each_once():
    config = {
        "Nodes": [
            {"name": "cn[03-04]"},
            {"name": "cn[01-03]"},
            "not a group",
            {"name": "gpu01,cn04"},
        ]
    }
    assert crane_config.compute_hosts(config) == ["cn03", "cn04", "cn01", "cn02", "gpu01"]


def test_large_cluster_with_one_group_per_node():
    # 30,000 nodes: a list-membership scan per name made this quadratic (1.5 s per call at
    # 10,000 nodes, called from every SLS that imports map.jinja).
    count = 30000
    config = {"Nodes": [{"name": f"cn{n:05d}"} for n in range(1, count + 1)]}
    hosts = crane_config.compute_hosts(config)
    assert len(hosts) == count
    assert hosts[0] == "cn00001"
    assert hosts[-1] == "cn30000"
    assert crane_config.roles(config, ["cn29999"]) == ["compute"]
