{#- The name-resolution gate changes nothing on the node, so there is nothing to remove. #}

crane-names-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: the name-resolution gate leaves nothing behind
