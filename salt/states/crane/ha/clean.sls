{#- Remove the formula's keepalived setup from a control minion: keepalived stopped and
    disabled (the virtual IP leaves this node), its config and the formula's scripts removed.
    The package stays (the site may use keepalived for more); CraneSched's data stays. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set ha = crane.ha %}

crane-ha-clean-keepalived-service-dead:
  service.dead:
    - name: {{ ha.keepalived_service }}
    - enable: false
{%- for file in ["crane-check-cranectld.sh", "crane-on-master.sh", "crane-on-backup.sh"] %}

crane-ha-clean-script-{{ file.split(".")[0] }}-file-absent:
  file.absent:
    - name: {{ ha.script_dir }}/{{ file }}
    - require:
      - service: crane-ha-clean-keepalived-service-dead
{%- endfor %}

crane-ha-clean-keepalived-config-file-absent:
  file.absent:
    - name: {{ ha.config_file }}
    - require:
      - service: crane-ha-clean-keepalived-service-dead
