{#- Step 4: the gres gate. craned exits at start when a device file its gres entries name is
    missing; check this node's devices against the new config before config.yaml is written
    or craned restarted. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate
{%- if "compute" in crane.roles %}

crane-gres-valid:
  crane.gres_valid:
    - name: {{ crane.host }}
    - config: {{ crane.config | json }}
    - dev_root: {{ crane.gres.dev_root }}
    - require:
      - crane: crane-validate-config
{%- endif %}
