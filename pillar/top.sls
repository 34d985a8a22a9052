# Every node gets the cluster; only the control node gets the MongoDB credentials.
base:
  '*':
    - crane.cluster
    - crane.mine
  cranectl:
    - crane.database
