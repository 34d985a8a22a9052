{#- Reactor for `salt/key`: when a minion's key is deleted (`salt-key -d`), crane.orch.leave
    drains its node if it is still up and takes it out of the config. Master config (see the
    README):
      reactor:
        - 'salt/key':
          - salt://reactor/leave.sls #}
{%- set minion = data.get("id") %}
{%- if data.get("act") == "delete" and data.get("result") and minion is string and minion %}
crane-reactor-leave:
  runner.state.orchestrate:
    - args:
      - mods: crane.orch.leave
      - pillar:
          crane:
            leave: {{ minion | json }}
{%- endif %}
