{#- The MongoDB preflight changes nothing on the node, so there is nothing to remove. #}

crane-mongodb-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: the MongoDB preflight leaves nothing behind
