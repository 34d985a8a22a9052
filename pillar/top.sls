# Every node gets the cluster; only the control node gets the MongoDB credentials.
base:
  '*':
    - crane.cluster
  cranectl:
    - crane.database
