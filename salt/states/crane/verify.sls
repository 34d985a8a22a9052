{#- Step 12: on the control node, wait until cinfo shows every configured node up (idle, mix
    or alloc) and name the nodes that are not; then drain again the recorded nodes that were
    not up when cranectld came back (whatever nodes_ready found). Off with
    crane:verify:enabled false (the next run retries them then). #}
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}

include:
  - .validate
{%- if "control" in crane.roles and crane.verify.enabled %}
  - .service

crane-verify-nodes-ready:
  crane.nodes_ready:
    - name: {{ crane.compute_nodes | json }}
    - states: [idle, mix, alloc]
    - timeout: {{ crane.verify.timeout }}
    - interval: {{ crane.verify.interval }}
    - require:
      - {{ "crane_ha" if crane.ha_facts else "crane" }}: crane-service-cranectld-crane-daemon-healthy

crane-verify-drains-restored:
  crane.drains_restored:
    - name: {{ crane.compute_nodes | json }}
    - require:
      - {{ "crane_ha" if crane.ha_facts else "crane" }}: crane-service-cranectld-crane-daemon-healthy
    {#- no requisite on nodes_ready: defined after it, this runs after it (state_auto_order)
        whether it passed or not, so a node that is up is drained again #}
{%- endif %}
