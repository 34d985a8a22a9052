{#- chrony is the node's clock, which other services rely on too: crane.clean leaves it. #}

crane-time-clean-chrony-kept:
  test.succeed_without_changes:
    - name: chrony is left installed and running (the node's clock is not CraneSched's alone)
