{#- Reactor for the crane_drift beacon (tag salt/beacon/<minion>/crane_drift/<kind>): the
    crane.drift runner records the drift on the master and, when the node's baseline says
    mode heal, re-applies the node (one apply per node at a time). Master config:

      reactor:
        - 'salt/beacon/*/crane_drift/*':
          - salt://reactor/heal.sls
#}
crane-drift-{{ data["id"] }}:
  runner.crane.drift:
    - args:
      - minion: {{ data["id"] | json }}
      - event:
          kind: {{ data.get("kind", "") | json }}
          what: {{ data.get("what", "") | json }}
          mode: {{ data.get("mode", "report") | json }}
          time: {{ data.get("time", 0) | json }}
