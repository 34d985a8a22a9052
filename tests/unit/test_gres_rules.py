"""craned's gres rules: static_errors, static_warnings, device_paths, node_errors (fake stat)."""

import errno
import os
import types

import crane_gres
import pytest

GROUP = "cn[01-02]"


def gpu(**extra):
    """A valid gres entry (the CraneSched sample) with ``extra`` keys added or replaced."""
    entry = {"name": "gpu", "type": "a100", "EnvInjector": "nvidia"}
    entry["DeviceFileRegex"] = "/dev/nvidia[0-3]"
    entry.update(extra)
    return {key: value for key, value in entry.items() if value is not DROP}


DROP = object()


def only(errors):
    assert len(errors) == 1, errors
    return errors[0]


# --------------------------------------------------------------------------- static_errors


def test_sample_entry_is_clean():
    assert crane_gres.static_errors(GROUP, [gpu()]) == []
    assert crane_gres.static_warnings(GROUP, [gpu()]) == []


def test_no_gres_is_clean():
    assert crane_gres.static_errors(GROUP, None) == []
    assert crane_gres.static_errors(GROUP, []) == []


@pytest.mark.parametrize("key", ["name", "type"])
def test_missing_name_or_type(key):
    message = only(crane_gres.static_errors(GROUP, [gpu(**{key: DROP})]))
    assert f"'{key}' is missing" in message
    assert "node group 'cn[01-02]'" in message


def test_null_name_is_reported():
    assert "'name' is null" in only(crane_gres.static_errors(GROUP, [gpu(name=None)]))


def test_duplicate_name_type_in_one_node_entry():
    gres = [gpu(), gpu(DeviceFileRegex="/dev/nvidia[4-7]")]
    message = only(crane_gres.static_errors(GROUP, gres))
    assert "Duplicate GRES definition: gpu:a100 appears more than once" in message
    assert GROUP in message


def test_same_name_other_type_is_not_a_duplicate():
    gres = [gpu(), gpu(type="t4", DeviceFileRegex="/dev/nvidia[4-7]")]
    assert crane_gres.static_errors(GROUP, gres) == []


def test_both_cdi_regex_and_list():
    entry = gpu(DeviceCDIRegex="nvidia.com/gpu=[0-3]", DeviceCDIList=["a=0", "a=1", "a=2", "a=3"])
    message = only(crane_gres.static_errors(GROUP, [entry]))
    assert "has both DeviceCDIRegex and DeviceCDIList configured" in message
    assert "gres gpu:a100" in message


def test_unparsable_cdi_regex():
    message = only(crane_gres.static_errors(GROUP, [gpu(DeviceCDIRegex="nvidia.com/gpu=[x]")]))
    assert "Illegal gres gpu:a100 DeviceCDIRegex string format." in message


def test_unparsable_device_file_regex():
    message = only(crane_gres.static_errors(GROUP, [gpu(DeviceFileRegex="/dev/nvidia[0-3")]))
    assert "Illegal gres gpu:a100 DeviceFileRegex path string format." in message
    assert "/dev/nvidia[0-3" in message


def test_reversed_range_expands_to_zero_paths():
    message = only(crane_gres.static_errors(GROUP, [gpu(DeviceFileRegex="/dev/nvidia[3-0]")]))
    assert "DeviceFileRegex expanded to zero paths" in message
    assert "/dev/nvidia[3-0]" in message


def test_scalar_device_file_list_is_not_a_sequence():
    errors = crane_gres.static_errors(
        GROUP, [gpu(DeviceFileRegex=DROP, DeviceFileList="/dev/nvidia0")]
    )
    assert len(errors) == 2, errors
    assert "It must be a YAML sequence." in errors[0]
    assert "At least one of DeviceFileRegex or DeviceFileList" in errors[1]


def test_scalar_device_file_list_next_to_a_regex_is_still_a_cranectld_error():
    message = only(crane_gres.static_errors(GROUP, [gpu(DeviceFileList="/dev/nvidia0")]))
    assert "cranectld" in message and "DeviceFileList" in message


def test_unparsable_device_file_list_item():
    entry = gpu(DeviceFileRegex=DROP, DeviceFileList=["/dev/nvidia0", "/dev/nvidia[1"])
    message = only(crane_gres.static_errors(GROUP, [entry]))
    assert "Illegal gres gpu:a100 DeviceFileList path string format." in message
    assert "/dev/nvidia[1" in message


def test_device_file_list_item_expanding_to_nothing():
    entry = gpu(DeviceFileRegex=DROP, DeviceFileList=["/dev/nvidia0", "/dev/nvidia[2-1]"])
    message = only(crane_gres.static_errors(GROUP, [entry]))
    assert "DeviceFileList entry expanded to zero paths" in message


def test_cdi_count_must_match_device_count():
    entry = gpu(DeviceCDIList=["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    message = only(crane_gres.static_errors(GROUP, [entry]))
    assert "CDI name count (2) does not match device count (4)" in message


def test_cdi_count_counts_regex_and_list_devices():
    entry = gpu(
        DeviceFileRegex="/dev/nvidia[0-1]",
        DeviceFileList=["/dev/nvidia2"],
        DeviceCDIRegex="nvidia.com/gpu=[0-2]",
    )
    assert crane_gres.static_errors(GROUP, [entry]) == []


def test_neither_device_key():
    message = only(crane_gres.static_errors(GROUP, [gpu(DeviceFileRegex=DROP)]))
    assert "At least one of DeviceFileRegex or DeviceFileList must be configured" in message


@pytest.mark.parametrize("value", [DROP, "", "common", "nvidia", "hip", "ascend"])
def test_valid_env_injectors(value):
    assert crane_gres.static_errors(GROUP, [gpu(EnvInjector=value)]) == []


@pytest.mark.parametrize("value", ["NVIDIA", "cuda", "Hip", None, True])
def test_invalid_env_injectors(value):
    message = only(crane_gres.static_errors(GROUP, [gpu(EnvInjector=value)]))
    assert "Invalid injector type:" in message
    assert "gres gpu:a100" in message


def test_one_bad_entry_among_good_ones_names_its_own_gres():
    gres = [gpu(), gpu(type="t4", DeviceFileRegex="/dev/nvidia[9-8]")]
    message = only(crane_gres.static_errors("gpu[1-4]", gres))
    assert "node group 'gpu[1-4]', gres gpu:t4" in message


def test_gres_must_be_a_sequence():
    assert "sequence" in only(crane_gres.static_errors(GROUP, {"name": "gpu"}))


# --------------------------------------------------------------------------- static_warnings


def test_control_node_in_device_file_list_is_warned():
    entry = gpu(DeviceFileRegex=DROP, DeviceFileList=["/dev/nvidia0,/dev/nvidiactl"])
    message = only(crane_gres.static_warnings(GROUP, [entry]))
    assert "/dev/nvidiactl is a shared control node" in message
    assert GROUP in message and "gpu:a100" in message


@pytest.mark.parametrize(
    "path",
    ["/dev/kfd", "/dev/davinci_manager", "/dev/infiniband/rdma_cm", "/dev/nvidia-caps/nvidia-cap1"],
)
def test_other_control_nodes_are_warned(path):
    entry = {"name": "x", "type": "y", "DeviceFileList": [f"/dev/accel0,{path}"]}
    assert path in only(crane_gres.static_warnings(GROUP, [entry]))


def test_rdma_example_from_the_container_docs_is_warned_for_every_vf():
    entry = {
        "name": "rdma",
        "type": "mlx5",
        "DeviceFileList": [
            "/dev/infiniband/uverbs3,/dev/infiniband/rdma_cm",
            "/dev/infiniband/uverbs4,/dev/infiniband/rdma_cm",
        ],
    }
    warnings = crane_gres.static_warnings(GROUP, [entry])
    assert sum("rdma_cm is a shared control node" in w for w in warnings) == 2


def test_gpu_not_named_gpu_is_warned():
    message = only(crane_gres.static_warnings(GROUP, [gpu(name="cuda")]))
    assert "gres name 'gpu'" in message and "cuda:a100" in message


def test_npu_name_is_fine_for_ascend():
    entry = {"name": "npu", "type": "910b", "EnvInjector": "ascend"}
    entry["DeviceFileRegex"] = "/dev/davinci[0-7]"
    assert crane_gres.static_warnings(GROUP, [entry]) == []


def test_same_device_in_two_entries_is_warned():
    gres = [gpu(), gpu(type="t4", DeviceFileRegex="/dev/nvidia3")]
    assert "/dev/nvidia3 is listed 2 times" in only(crane_gres.static_warnings(GROUP, gres))


def test_ignored_cdi_keys_are_warned():
    entry = gpu(DeviceCDIList="nvidia.com/gpu=0")
    assert "DeviceCDIList is not a sequence" in only(crane_gres.static_warnings(GROUP, [entry]))


def test_literal_brackets_are_warned():
    entry = gpu(DeviceFileRegex="/dev/nvidia[0-1]x")
    assert "keeps its brackets literally" in only(crane_gres.static_warnings(GROUP, [entry]))


# --------------------------------------------------------------------------- device_paths


def test_device_paths_regex_gives_one_device_per_path():
    assert crane_gres.device_paths(gpu(DeviceFileRegex="/dev/nvidia[0-1]")) == [
        ["/dev/nvidia0"],
        ["/dev/nvidia1"],
    ]


def test_device_paths_list_item_is_one_device_slot_first():
    entry = {"DeviceFileList": ["/dev/accel0,/dev/accel0_ctl", "/dev/accel[1]"]}
    assert crane_gres.device_paths(entry) == [
        ["/dev/accel0", "/dev/accel0_ctl"],
        ["/dev/accel1"],
    ]


def test_device_paths_adds_both_keys_and_ignores_a_scalar_list():
    entry = {"DeviceFileRegex": "/dev/nvidia0", "DeviceFileList": ["/dev/nvidia1"]}
    assert crane_gres.device_paths(entry) == [["/dev/nvidia0"], ["/dev/nvidia1"]]
    assert crane_gres.device_paths({"DeviceFileList": "/dev/nvidia0"}) == []


def test_device_paths_raises_on_bad_syntax():
    with pytest.raises(ValueError):
        crane_gres.device_paths({"DeviceFileRegex": "/dev/nvidia[0"})


# --------------------------------------------------------------------------- node_errors


def fake_stat(existing, seen=None):
    """A stat() that knows only ``existing`` paths and records what it was asked."""

    def _stat(path):
        if seen is not None:
            seen.append(path)
        if path not in existing:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return types.SimpleNamespace(st_mode=0o20666)

    return _stat


def cluster(*groups):
    return {
        "Nodes": [{"name": name, "cpu": 2, "memory": "2G", "gres": gres} for name, gres in groups]
    }


def test_node_not_in_any_group():
    message = only(crane_gres.node_errors("login1", cluster((GROUP, [gpu()])), stat=fake_stat([])))
    assert "This machine login1 is not contained in Nodes!" in message


def test_all_device_files_present():
    present = {f"/dev/nvidia{i}" for i in range(4)}
    assert crane_gres.node_errors("cn01", cluster((GROUP, [gpu()])), stat=fake_stat(present)) == []


def test_each_missing_device_file_is_named():
    errors = crane_gres.node_errors(
        "cn02", cluster((GROUP, [gpu()])), stat=fake_stat({"/dev/nvidia0", "/dev/nvidia1"})
    )
    assert len(errors) == 2
    for error, path in zip(errors, ["/dev/nvidia2", "/dev/nvidia3"], strict=True):
        assert error.startswith("node cn02, node group 'cn[01-02]', gres gpu:a100:")
        assert f"Failed to stat device file {path}" in error


def test_every_file_of_a_list_device_is_checked():
    entry = {"name": "acc", "type": "x", "DeviceFileList": ["/dev/accel0,/dev/accel0_ctl"]}
    errors = crane_gres.node_errors(
        "cn01", cluster((GROUP, [entry])), stat=fake_stat({"/dev/accel0"})
    )
    assert "/dev/accel0_ctl" in only(errors)


def test_dev_paths_are_looked_up_under_dev_root():
    seen = []
    crane_gres.node_errors("cn01", cluster((GROUP, [gpu()])), "/srv/fake", fake_stat(set(), seen))
    assert seen == [f"/srv/fake/nvidia{i}" for i in range(4)]


def test_other_nodes_devices_are_not_checked():
    config = cluster((GROUP, [gpu()]), ("cn03", []))
    assert crane_gres.node_errors("cn03", config, stat=fake_stat(set())) == []


def test_a_bad_group_elsewhere_also_stops_this_node():
    config = cluster(("cn03", []), (GROUP, [gpu(EnvInjector="cuda")]))
    message = only(crane_gres.node_errors("cn03", config, stat=fake_stat(set())))
    assert "node group 'cn[01-02]'" in message and "Invalid injector type:cuda" in message


def test_partial_cdi_across_groups_of_one_node():
    with_cdi = gpu(DeviceFileRegex="/dev/nvidia[0-1]", DeviceCDIRegex="nvidia.com/gpu=[0-1]")
    without = gpu(DeviceFileRegex="/dev/nvidia[2-3]")
    present = {f"/dev/nvidia{i}" for i in range(4)}
    config = cluster(("cn01", [with_cdi]), ("cn[01-02]", [without]))
    message = only(crane_gres.node_errors("cn01", config, stat=fake_stat(present)))
    assert "inconsistent CDI configuration" in message
    assert "node cn01, gres gpu:a100" in message
    assert crane_gres.node_errors("cn02", config, stat=fake_stat(present)) == []


def test_cni_pipeline_without_cdi():
    entry = gpu(DeviceFileRegex="/dev/nvidia0", DeviceCniPipeline="rdma")
    errors = crane_gres.node_errors(
        "cn01", cluster((GROUP, [entry])), stat=fake_stat({"/dev/nvidia0"})
    )
    assert "DeviceCniPipeline requires CDI" in only(errors)


@pytest.mark.parametrize("fqn", ["rdma/mlx5_3", "rdma/mlx5_3="])
def test_malformed_cdi_fqn_with_pipeline(fqn):
    entry = gpu(DeviceFileRegex="/dev/nvidia0", DeviceCniPipeline="p", DeviceCDIList=[fqn])
    errors = crane_gres.node_errors(
        "cn01", cluster((GROUP, [entry])), stat=fake_stat({"/dev/nvidia0"})
    )
    assert f"Malformed CDI FQN '{fqn}'" in only(errors)


def test_good_cdi_fqn_with_pipeline():
    entry = gpu(
        DeviceFileRegex="/dev/nvidia0",
        DeviceCniPipeline="p",
        DeviceCDIList=["rdma/mlx5_3=0000:17:00.2"],
    )
    config = cluster((GROUP, [entry]))
    assert crane_gres.node_errors("cn01", config, stat=fake_stat({"/dev/nvidia0"})) == []


def test_node_warnings_flag_non_device_files():
    def regular(path):
        return types.SimpleNamespace(st_mode=0o100644)

    warnings = crane_gres.node_warnings("cn01", cluster((GROUP, [gpu()])), stat=regular)
    assert len(warnings) == 4 and "is not a device file" in warnings[0]
