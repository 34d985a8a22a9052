"""crane_gres.node_errors / node_warnings against a fake /dev with real device nodes."""

import crane_gres

CONFIG = {
    "Nodes": [
        {"name": "cn[01-02]", "cpu": 2, "memory": "2G"},
        {
            "name": "gpu[01-02]",
            "cpu": 8,
            "memory": "8G",
            "gres": [
                {
                    "name": "gpu",
                    "type": "a100",
                    "EnvInjector": "nvidia",
                    "DeviceFileRegex": "/dev/nvidia[0-3]",
                },
                {
                    "name": "rdma",
                    "type": "mlx5",
                    "DeviceFileList": ["/dev/infiniband/uverbs0,/dev/infiniband/umad0"],
                },
            ],
        },
    ]
}


def test_all_devices_present(fake_dev):
    fake_dev.chr(
        "nvidia0", "nvidia1", "nvidia2", "nvidia3", "infiniband/uverbs0", "infiniband/umad0"
    )
    assert crane_gres.node_errors("gpu01", CONFIG, dev_root=fake_dev.root) == []
    assert crane_gres.node_warnings("gpu01", CONFIG, dev_root=fake_dev.root) == []


def test_missing_devices_are_each_named(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "infiniband/uverbs0")
    errors = crane_gres.node_errors("gpu02", CONFIG, dev_root=fake_dev.root)
    assert len(errors) == 3
    assert [e.split(": device file ")[1].split(" ")[0] for e in errors] == [
        "/dev/nvidia2",
        "/dev/nvidia3",
        "/dev/infiniband/umad0",
    ]
    assert all(e.startswith("node gpu02, node group 'gpu[01-02]', gres ") for e in errors)
    assert "gres rdma:mlx5" in errors[2] and "No such file or directory" in errors[2]


def test_node_without_gres_needs_no_devices(fake_dev):
    assert crane_gres.node_errors("cn01", CONFIG, dev_root=fake_dev.root) == []


def test_regular_file_passes_stat_but_is_warned(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidia2", "infiniband/uverbs0", "infiniband/umad0")
    fake_dev.file("nvidia3")
    assert crane_gres.node_errors("gpu01", CONFIG, dev_root=fake_dev.root) == []
    (warning,) = crane_gres.node_warnings("gpu01", CONFIG, dev_root=fake_dev.root)
    assert "/dev/nvidia3 is not a device file" in warning


def test_unknown_node(fake_dev):
    (error,) = crane_gres.node_errors("gpu03", CONFIG, dev_root=fake_dev.root)
    assert "gpu03" in error and "not contained in Nodes" in error
