{#- Step 7: on the control node, wait until cinfo shows every configured node up (idle, mix
    or alloc) and name the nodes that are not. Off with crane:verify:enabled false. #}
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
      - crane: crane-service-cranectld-crane-daemon-healthy
{%- endif %}
