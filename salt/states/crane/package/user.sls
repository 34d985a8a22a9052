{#- Step 2: what CraneSched's packages miss: the crane user and group on control nodes,
    /etc/crane and CraneBaseDir (dpkg does not run CraneSched's post-install script). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate

{%- if "control" in crane.roles %}

crane-package-user-group-present:
  group.present:
    - name: {{ crane.group }}
    - system: true
    - require:
      - sls: {{ tplroot }}.validate

crane-package-user-user-present:
  user.present:
    - name: {{ crane.user }}
    - gid: {{ crane.group }}
    - system: true
    - home: {{ crane.base_dir.rstrip("/") }}
    - createhome: false
    - shell: {{ crane.nologin }}
    - require:
      - group: crane-package-user-group-present
{%- endif %}

crane-package-dirs-etc-file-directory:
  file.directory:
    - name: {{ crane.config_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - require:
      - sls: {{ tplroot }}.validate

crane-package-dirs-base-file-directory:
  file.directory:
    - name: {{ crane.base_dir }}
{%- if "control" in crane.roles %}
    - user: {{ crane.user }}
    - group: {{ crane.group }}
{%- else %}
    - user: root
    - group: root
{%- endif %}
    - mode: "0755"
    - require:
      - sls: {{ tplroot }}.validate
{%- if "control" in crane.roles %}
      - user: crane-package-user-user-present
{%- endif %}
