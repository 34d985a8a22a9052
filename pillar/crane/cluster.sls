# Example cluster: one control node, a CPU partition, a GPU partition with 4 NVIDIA GPUs,
# one login node. Roles come from this data: control = ControlMachine, compute = the hosts of
# Nodes[].name, login = login_nodes. Minions match by host name.
crane:
  # Version of every CraneSched package; per package: versions: {craned: 1.1.3}
  version: "1.1.2"
  install:
    # repo | files | binaries
    method: repo
    repo:
      # Debian: "deb <url> <dist> <components>"; RedHat: baseurl
      url: http://repo.example.org/cranesched/debian
      dist: ./
      trusted: false
  login_nodes:
    - login01
  # on_change: restart a daemon when its package or config changed; never: only report it
  restart: on_change
  verify:
    enabled: true
    timeout: 180
  # Open each node's CraneSched ports where ufw or firewalld is active (only the formula's
  # own rules; crane.clean removes them and nothing else). Default: from anywhere; a list of
  # networks opens them only from there, e.g. [10.0.0.0/24]. firewalld: the zone to open
  # them in ("": the default zone).
  firewall: true
  firewall_sources: []
  firewall_zone: ""
  gres:
    # true: each Nodes group without its own gres gets what its nodes discover, published
    # through the Salt mine (crane/mine.sls); a group whose nodes disagree or sent no data
    # fails validation, naming the group
    auto: false
    # vendor -> type when the vendor tool cannot tell the model, e.g. {nvidia: a100}
    default_types: {}
    # true: a oneshot unit runs nvidia-modprobe -c N for every /dev/nvidiaN a GPU node's gres
    # names, before craned starts (for drivers that create the device files lazily)
    nvidia_device_files: false
  # TLS (with TLS.Enabled in config): manage: true writes each TLS file the node's daemons
  # read, per file name from `files` (PEM text; put keys in a pillar file targeted at the
  # nodes that need them) or else from the salt:// folder `source`.
  tls:
    manage: false
    source: salt://crane-tls
    files: {}
  # Plugins (opt-in): /etc/crane/plugin.yaml from `config` on the nodes of `roles` (cranectld
  # and craned read it); with Enabled: true also CraneSched's plugin package and cplugind.
  plugin:
    manage: false
    roles: [control, compute]
    config:
      Enabled: false
      PlugindSockPath: cplugind/cplugind.sock
      Plugins:
        - Name: monitor
          Path: /usr/lib/crane/plugin/monitor.so
          Config: /etc/crane/monitor.yaml
  pam:
    # true: pam_crane.so in /etc/pam.d/sshd on compute nodes, so only users with a running
    # job there can SSH in (root always can). Added once cinfo on the node lists it up,
    # so compute nodes need the CLIs: role_packages: {compute: [craned, frontend]}
    manage: false
  # A Keepalived control pair instead of one control node (off here). With it, the two
  # minions below are the control role, ControlMachine must be vip_name, config needs
  # Keepalived: {CraneSharedBaseDir: <shared storage mounted on both>}, and the pillar top
  # must give crane/database.sls to both control minions.
  ha:
    enabled: false
    # nodes: [ctl1, ctl2]
    # vip: 10.0.0.10/24
    # vip_name: cranectl
    # interface: eth0
    # router_id: 51
    # priorities: {ctl1: 100, ctl2: 90}
    # unicast_peers: {ctl1: 10.0.0.11, ctl2: 10.0.0.12}   # or multicast: true
  # Written as /etc/crane/config.yaml on every node, byte-identical: any CraneSched key works.
  config:
    ClusterName: crane_demo
    ControlMachine: cranectl
    CraneBaseDir: /var/crane/
    CraneCtldListenAddr: 0.0.0.0
    CraneCtldListenPort: 10011
    CraneCtldForInternalListenPort: 10013
    CranedListen: 0.0.0.0
    CranedListenPort: 10010
    CraneCtldForeground: true
    CranedForeground: true
    CraneCtldDebugLevel: info
    CranedDebugLevel: info
    CraneCtld:
      CranedTimeout: 30
    Craned:
      PingInterval: 10
    Supervisor:
      Path: /usr/libexec/csupervisor
      DebugLevel: info
      LogDir: supervisor
    Nodes:
      - name: cn[01-02]
        cpu: 2
        memory: 2G
      - name: cn03
        cpu: 4
        memory: 8G
        gres:
          - name: gpu
            type: a100
            EnvInjector: nvidia
            DeviceFileRegex: /dev/nvidia[0-3]
      # A group may select its nodes instead (README, "Nodes that join by themselves"):
      # - match: G@crane_partition:GPU
      #   cpu: auto
      #   memory: auto
      #   gres: auto
    Partitions:
      - name: CPU
        nodes: cn[01-02]
        priority: 5
      - name: GPU
        nodes: cn03
        priority: 3
    DefaultPartition: CPU
