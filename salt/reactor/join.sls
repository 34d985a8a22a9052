{#- Reactor for `salt/minion/*/start`: a minion that starts (a new node, or one restarted)
    is handed to crane.orch.join, which brings it in when it matches a node group by selector
    and does nothing otherwise. Master config (see the README):
      reactor:
        - 'salt/minion/*/start':
          - salt://reactor/join.sls
    The orchestration runs on the master, one join at a time; nothing here decides anything. #}
{%- set minion = data.get("id") %}
{%- if minion and minion is string and minion.strip() == minion %}
crane-reactor-join:
  runner.state.orchestrate:
    - args:
      - mods: crane.orch.join
      - pillar:
          crane:
            join: {{ minion | json }}
{%- endif %}
