{#- crane:ha on the two control minions: the shared-directory gate, keepalived with the
    formula's check and notify scripts (root-owned, as enable_script_security demands). Which
    node runs cranectld is keepalived's decision: service/running.sls never starts it on the
    backup. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set ha = crane.ha %}
{%- set facts = crane.ha_facts %}
{%- set scripts = {"check": ha.script_dir ~ "/crane-check-cranectld.sh",
                   "on_master": ha.script_dir ~ "/crane-on-master.sh",
                   "on_backup": ha.script_dir ~ "/crane-on-backup.sh"} %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.package
  - {{ tplroot }}.config

crane-ha-shared-dir-ready:
  crane_ha.shared_dir_ready:
    - name: {{ facts.shared_dir | json }}
    - user: {{ crane.user | json }}
    - require_mount: {{ ha.require_mount | json }}
    - require:
      - crane: crane-validate-config
      - user: crane-package-user-user-present

crane-ha-keepalived-pkg-installed:
  pkg.installed:
    - name: {{ ha.keepalived_package }}
    - require:
      - crane: crane-validate-config

crane-ha-script-dir-file-directory:
  file.directory:
    - name: {{ ha.script_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - require:
      - pkg: crane-ha-keepalived-pkg-installed
{%- for key, path in scripts.items() %}

crane-ha-script-{{ key }}-file-managed:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch(path.split("/")[-1] ~ ".jinja") }}
    - template: jinja
    - user: root
    - group: root
    - mode: "0755"
    - context:
        ha: {{ ha | json }}
        facts: {{ facts | json }}
    - require:
      - file: crane-ha-script-dir-file-directory
{%- endfor %}

crane-ha-keepalived-config-file-managed:
  file.managed:
    - name: {{ ha.config_file }}
    - source: {{ files_switch("keepalived.conf.jinja") }}
    - template: jinja
    - user: root
    - group: root
    - mode: "0600"
    - context:
        ha: {{ ha | json }}
        facts: {{ facts | json }}
        scripts: {{ scripts | json }}
    - require:
      - file: crane-ha-script-dir-file-directory

{#- keepalived may start cranectld as soon as it runs: config.yaml, database.yaml and the
    shared directory must be ready first. #}
crane-ha-keepalived-service-running:
  service.running:
    - name: {{ ha.keepalived_service }}
    - enable: true
    - reload: true
    - require:
      - crane_ha: crane-ha-shared-dir-ready
      - file: crane-config-file-config-file-managed
      - crane: crane-config-file-database-file-managed
    - watch:
      - file: crane-ha-keepalived-config-file-managed
{%- for key in scripts %}
      - file: crane-ha-script-{{ key }}-file-managed
{%- endfor %}
