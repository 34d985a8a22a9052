{#- Step 9: config.yaml, byte-identical on every node; database.yaml on control nodes only
    (0600, owner crane, never shown); the formula's systemd drop-ins. On compute nodes the gres
    gate must pass first, so a config craned would reject is never written. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.package
{%- if "compute" in crane.roles %}
  - {{ tplroot }}.gres
{%- endif %}

crane-config-file-config-file-managed:
  file.managed:
    - name: {{ crane.config_dir }}/config.yaml
    - contents: {{ crane.config_text | json }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.package.user
{%- if "compute" in crane.roles %}
      - crane: crane-gres-valid
{%- endif %}
{%- if "control" in crane.roles %}

{#- crane.database_file reads crane:database from the pillar on this node: the secrets never
    travel through SLS data, state arguments or returns. #}
crane-config-file-database-file-managed:
  crane.database_file:
    - name: {{ crane.config_dir }}/database.yaml
    - user: {{ crane.user }}
    - group: {{ crane.group }}
    - mode: "0600"
    - require:
      - sls: {{ tplroot }}.package.user
{%- endif %}

{%- for unit in crane.services %}

crane-config-dropin-{{ unit }}-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/{{ unit }}.service.d/crane-formula.conf
    - source: {{ files_switch("dropin.conf.jinja") }}
    - template: jinja
    - context:
        settings: {{ crane.units[unit].dropin | json }}
    - makedirs: true
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate
{%- endfor %}
