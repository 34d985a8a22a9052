{#- Remove the formula's config files (after the daemons are stopped). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.service.clean

{%- for name in ["config.yaml", "database.yaml"] %}

crane-config-clean-{{ name | replace(".", "-") }}-file-absent:
  file.absent:
    - name: {{ crane.config_dir }}/{{ name }}
    - require:
      - sls: {{ tplroot }}.service.clean
{%- endfor %}
