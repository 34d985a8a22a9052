{#- Step 1: the whole cluster config against CraneSched's own rules, before anything changes.
    failhard: on an error nothing else in this run changes on the node. #}
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}

crane-validate-config:
  crane.config_valid:
    - name: {{ crane.config_dir }}/config.yaml
{%- if "control" in crane.roles %}
    {#- the state reads database.yaml's secrets from the pillar itself #}
    - database: true
{%- endif %}
    - failhard: true
