{#- Remove what crane:plugin:manage put on the node: cplugind stopped and disabled,
    plugin.yaml removed (the plugin package goes with the package step's clean). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- if crane.plugin.here %}

crane-plugin-clean-cplugind-service-dead:
  service.dead:
    - name: {{ crane.plugin.service }}
    - enable: false

crane-plugin-clean-config-file-absent:
  file.absent:
    - name: {{ crane.config_dir }}/plugin.yaml
    - require:
      - service: crane-plugin-clean-cplugind-service-dead
{%- else %}

crane-plugin-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: no plugin.yaml to remove (crane:plugin:manage is off here)
{%- endif %}
