"""One bad cluster config per CraneSched rule: (id, change to the example pillar, message).

``change(crane)`` edits a deep copy of the example pillar's ``crane`` mapping in place, or
returns what replaces it; ``message`` must appear in the validation error that names the key
(and node group). ``changed(change, crane)`` applies a change either way.
"""

CASES = []


def case(message):
    def register(change):
        CASES.append((change.__name__.removeprefix("bad_"), change, message))
        return change

    return register


def changed(change, crane):
    """The pillar ``crane`` after ``change``."""
    replacement = change(crane)
    return crane if replacement is None else replacement


def _nodes(crane):
    return crane["config"]["Nodes"]


def _gpu(crane):
    return crane["config"]["Nodes"][1]["gres"][0]


@case("ClusterName: missing or empty")
def bad_cluster_name_missing(crane):
    del crane["config"]["ClusterName"]


@case("ClusterName: missing or empty")
def bad_cluster_name_empty(crane):
    crane["config"]["ClusterName"] = ""


@case("ControlMachine: missing")
def bad_control_machine_missing(crane):
    del crane["config"]["ControlMachine"]


@case("ControlMachine: 'cranectl:10013' must be a bare host name")
def bad_control_machine_with_port(crane):
    crane["config"]["ControlMachine"] = "cranectl:10013"


@case("Nodes: missing or empty")
def bad_nodes_missing(crane):
    del crane["config"]["Nodes"]


@case("Nodes[0] 'cn[01-02' name:")
def bad_node_name_isolated_bracket(crane):
    _nodes(crane)[0]["name"] = "cn[01-02"


@case("Nodes[0] 'cn[[01-02]]' name:")
def bad_node_name_nested_brackets(crane):
    _nodes(crane)[0]["name"] = "cn[[01-02]]"


@case("Nodes[0] 'cn[a-b]' name:")
def bad_node_name_letters_in_range(crane):
    _nodes(crane)[0]["name"] = "cn[a-b]"


@case("Nodes[0] 'cn[01-02]' memory: '8g' is rejected by CraneSched")
def bad_memory_lower_case(crane):
    _nodes(crane)[0]["memory"] = "8g"


@case("Nodes[0] 'cn[01-02]' memory: '8T' is rejected by CraneSched")
def bad_memory_terabytes(crane):
    _nodes(crane)[0]["memory"] = "8T"


@case("Nodes[0] 'cn[01-02]' memory: '1.5G' is read by CraneSched as '5G'")
def bad_memory_fraction(crane):
    _nodes(crane)[0]["memory"] = "1.5G"


@case("Nodes[0] 'cn[01-02]' memory: missing")
def bad_memory_missing(crane):
    del _nodes(crane)[0]["memory"]


@case("Nodes[0] 'cn[01-02]' cpu: '2' must be an unquoted positive integer")
def bad_cpu_quoted(crane):
    _nodes(crane)[0]["cpu"] = "2"


@case("Nodes[1] 'cn03' cpu: '2.5' must be an unquoted positive integer")
def bad_cpu_fraction(crane):
    _nodes(crane)[1]["cpu"] = 2.5


@case("Nodes[0] 'cn[01-02]' cpu: missing")
def bad_cpu_missing(crane):
    del _nodes(crane)[0]["cpu"]


@case("Nodes[1] 'cn[02-03]': node 'cn02' is already defined by Nodes[0] 'cn[01-02]'")
def bad_node_defined_twice(crane):
    _nodes(crane)[1]["name"] = "cn[02-03]"
    crane["config"]["Partitions"][1]["nodes"] = "cn[02-03]"


@case("Partitions[1]: missing name")
def bad_partition_without_name(crane):
    del crane["config"]["Partitions"][1]["name"]


@case("Partitions[1] 'GPU' nodes: missing")
def bad_partition_without_nodes(crane):
    del crane["config"]["Partitions"][1]["nodes"]


@case("Partitions[1] 'GPU' nodes: cn04 not defined in Nodes")
def bad_partition_unknown_node(crane):
    crane["config"]["Partitions"][1]["nodes"] = "cn[03-04]"


@case("Partitions: nodes cn03 belong to no partition")
def bad_node_in_no_partition(crane):
    del crane["config"]["Partitions"][1]


@case("DefaultPartition: 'DEBUG' is not a partition")
def bad_default_partition(crane):
    crane["config"]["DefaultPartition"] = "DEBUG"


@case("CraneCtldListenPort: '70000' is not a port 0-65535")
def bad_port_out_of_range(crane):
    crane["config"]["CraneCtldListenPort"] = 70000


@case("CraneCtldForInternalListenPort: missing; the CLIs")
def bad_internal_port_missing(crane):
    del crane["config"]["CraneCtldForInternalListenPort"]


@case("CranedListenPort: 'abc' is not a port 0-65535")
def bad_port_not_a_number(crane):
    crane["config"]["CranedListenPort"] = "abc"


@case("CraneCtldListenAddr: 'cranectl' must be an IPv4 or IPv6 literal")
def bad_ctld_listen_address(crane):
    crane["config"]["CraneCtldListenAddr"] = "cranectl"


@case("CranedListen: 'localhost' must be an IPv4 or IPv6 literal")
def bad_craned_listen_address(crane):
    crane["config"]["CranedListen"] = "localhost"


@case("Craned.PingInterval: 30s must be shorter than CraneCtld.CranedTimeout (30s)")
def bad_ping_not_below_timeout(crane):
    crane["config"]["Craned"]["PingInterval"] = 30


@case("CraneCtldDebugLevel: 'verbose' must be one of")
def bad_debug_level(crane):
    crane["config"]["CraneCtldDebugLevel"] = "verbose"


@case("Craned.MaxLogFileSize: '50m' is rejected by CraneSched")
def bad_log_size(crane):
    crane["config"]["Craned"]["MaxLogFileSize"] = "50m"


@case("Supervisor: missing; craned refuses to start")
def bad_supervisor_missing(crane):
    del crane["config"]["Supervisor"]


@case("node group 'cn03', gres gpu:a100: defined 2 times in one node entry")
def bad_gres_duplicate(crane):
    _nodes(crane)[1]["gres"].append(dict(_gpu(crane)))


@case("gres gpu:a100: both DeviceCDIRegex and DeviceCDIList are set")
def bad_gres_both_cdi_forms(crane):
    _gpu(crane)["DeviceCDIRegex"] = "nvidia.com/gpu=[0-3]"
    _gpu(crane)["DeviceCDIList"] = ["nvidia.com/gpu=0"]


@case("DeviceFileRegex '/dev/nvidia[3-0]' expands to zero paths")
def bad_gres_reversed_range(crane):
    _gpu(crane)["DeviceFileRegex"] = "/dev/nvidia[3-0]"


@case("At least one of DeviceFileRegex or DeviceFileList")
def bad_gres_no_device_files(crane):
    del _gpu(crane)["DeviceFileRegex"]


@case("DeviceFileList must be a YAML sequence")
def bad_gres_scalar_file_list(crane):
    del _gpu(crane)["DeviceFileRegex"]
    _gpu(crane)["DeviceFileList"] = "/dev/nvidia0"


@case("EnvInjector 'NVIDIA' is invalid")
def bad_gres_injector_case(crane):
    _gpu(crane)["EnvInjector"] = "NVIDIA"


@case("gres gpu:?: 'type' is missing")
def bad_gres_missing_type(crane):
    del _gpu(crane)["type"]


@case("CDI name count")
def bad_gres_cdi_count(crane):
    _gpu(crane)["DeviceCDIList"] = ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]


@case("Keepalived.CraneSharedBaseDir: required")
def bad_keepalived_without_shared_dir(crane):
    crane["config"]["Keepalived"] = {"CraneCtldAliveFile": "cranectld/cranectld.alive"}


@case("TLS.CaFilePath: required when TLS is enabled")
def bad_tls_without_files(crane):
    crane["config"]["TLS"] = {"Enabled": True}


@case("Partitions[0] 'CPU': DefaultMemPerCpu and DefaultMemPerNode are mutually exclusive")
def bad_partition_default_memory(crane):
    crane["config"]["Partitions"][0].update(DefaultMemPerCpu=1024, DefaultMemPerNode=4096)


@case("JobLifecycleHook.PrologFlags: RunInJob and Serial cannot be set together")
def bad_prolog_flags(crane):
    crane["config"]["JobLifecycleHook"] = {"PrologFlags": "RunInJob,Serial"}


@case("HealthCheck.Program: required")
def bad_health_check_without_program(crane):
    crane["config"]["HealthCheck"] = {"Interval": 60}


@case("crane:database:DbReplSetName: required")
def bad_database_without_replica_set(crane):
    del crane["database"]["DbReplSetName"]


@case("crane:database:Vault: needs Username and Password")
def bad_database_vault_without_user(crane):
    crane["database"]["Vault"] = {"Enabled": False}


@case("crane:database:DbPassword: contains one of")
def bad_database_password_breaks_uri(crane):
    crane["database"]["DbPassword"] = "p@ss:word"


@case("Nodes[0] 'cn[1-99999999]' name: invalid host list 'cn[1-99999999]': expands to 99999999")
def bad_node_name_typo_expands_past_the_bound(crane):
    _nodes(crane)[0]["name"] = "cn[1-99999999]"
    crane["config"]["Partitions"][0]["nodes"] = "cn[1-99999999]"


@case("crane: must be a mapping of the formula's settings, not a str")
def bad_crane_not_a_mapping(_crane):
    return "oops"


@case("crane:config: must be a mapping (the content of config.yaml), not a str")
def bad_config_a_string(crane):
    crane["config"] = "ClusterName: x"


@case("crane:restart: 'on-change' must be one of on_change, never")
def bad_restart_word(crane):
    crane["restart"] = "on-change"


@case("crane:verify: must be a mapping, not a str")
def bad_formula_setting_type(crane):
    crane["verify"] = "yes"


@case("CraneCtld: must be a mapping of CraneCtld's keys, not the number 5")
def bad_section_not_a_mapping(crane):
    crane["config"]["CraneCtld"] = 5


@case("Partitions[0] 'CPU' priority: 'high' must be an integer without quotes")
def bad_partition_priority_type(crane):
    crane["config"]["Partitions"][0]["priority"] = "high"


@case("ClusterName: YAML 1.1 read the number 83 here")
def bad_name_yaml_made_a_number(crane):
    crane["config"]["ClusterName"] = 83  # ClusterName: 0123


@case("crane:database:DbPassword: YAML 1.1 read the value here")
def bad_password_yaml_made_a_number(crane):
    crane["database"]["DbPassword"] = 83  # DbPassword: 0123


@case("CranedDebugLevel: YAML 1.1 read the boolean true here")
def bad_debug_level_yaml_made_true(crane):
    crane["config"]["CranedDebugLevel"] = True  # CranedDebugLevel: on


@case("TLS.Enabled: the quoted 'true' is refused by the Go CLIs")
def bad_tls_enabled_quoted(crane):
    crane["config"]["TLS"] = {"Enabled": "true"}


@case("JobLifecycleHook.PrologTimeout: the quoted '60' is refused by the Go CLIs")
def bad_prolog_timeout_quoted(crane):
    crane["config"]["JobLifecycleHook"] = {"PrologTimeout": "60"}


@case("Container.UserNsEnabledByDefault: the quoted 'false' is refused by the Go CLIs")
def bad_userns_quoted(crane):
    crane["config"]["Container"] = {"UserNsEnabledByDefault": "false"}


@case("Plugin.Enabled: the quoted 'true' is refused by the Go CLIs")
def bad_plugin_enabled_quoted(crane):
    crane["config"]["Plugin"] = {"Enabled": "true"}
