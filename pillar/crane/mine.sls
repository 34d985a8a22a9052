# Automatic gres mode (crane:gres:auto: true) reads what every node discovers from the Salt
# mine: crane_gres (its accelerators as config.yaml gres entries) and crane_host (its host
# name: craned matches host names, the mine keys by minion id). Minions read mine_functions
# from their pillar, so no minion config or restart is needed. Publish before applying:
#   salt '*' saltutil.sync_all && salt '*' saltutil.refresh_pillar && salt '*' mine.update
#   salt '*' state.apply crane
# crane:names:hosts_file: true reads crane_host and crane_address (its IPv4 addresses, the
# first one used) to write /etc/hosts entries on sites without DNS.
# After a node gains or loses devices, run mine.update on it before the next apply.
# crane_facts (host name, CPUs, memory, gres, joined or not) makes the nodes of node groups by
# selector (Nodes entries with `match`); a new node publishes it when its minion starts.
mine_functions:
  crane_facts:
    - mine_function: crane.node_facts
  crane_gres:
    - mine_function: crane.gres_discover
  crane_host:
    - mine_function: grains.get
    - host
  crane_address:
    - mine_function: network.ip_addrs
