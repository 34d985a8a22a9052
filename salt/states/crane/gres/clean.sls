{#- Nothing to undo: the gres step changes no file of its own. #}
crane-gres-clean-nothing:
  test.nop: []
