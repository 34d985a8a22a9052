{#- Step 10: the daemons of this minion's roles, enabled and running, cranectld before craned.
    A change of a daemon's package, config or drop-in marks a restart as due on the node
    (crane.restart_marked); the mark stays until the daemon has restarted, so a restart skipped
    because a later step failed happens on the next run. crane:restart on_change restarts the
    daemon while a restart is due; never only says so. Before cranectld restarts, the drained
    nodes are recorded (cranectld keeps drains only in memory) and drained again after.
    A daemon that exits after start fails here with the last lines of its journal and log,
    i.e. CraneSched's own reason. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set method = crane.install.method %}
{%- set ha = crane.ha_facts if "control" in crane.roles else None %}
{%- set ctld_healthy_mod = "crane_ha" if ha else "crane" %}

include:
  - {{ tplroot }}.package
  - {{ tplroot }}.config
{%- if ha %}
  - {{ tplroot }}.ha
{%- endif %}

{%- for unit in crane.services %}
{%-   set config_triggers = [{"file": "crane-config-file-config-file-managed"},
                             {"file": "crane-config-dropin-" ~ unit ~ "-file-managed"}] %}
{%-   if unit == "cranectld" %}
{%-     do config_triggers.append({"crane": "crane-config-file-database-file-managed"}) %}
{%-   endif %}
{%-   if method == "binaries" %}
{%-     do config_triggers.append({"file": "crane-package-unit-" ~ unit ~ "-file-managed"}) %}
{%-   endif %}
{%-   set package_triggers = [{"pkg": "crane-package-install-pkg-installed"}]
                             if method != "binaries" and crane.packages else [] %}
{%-   set markers = [{"crane": "crane-service-" ~ unit ~ "-restart-marked"}] %}

crane-service-{{ unit }}-restart-marked:
  crane.restart_marked:
    - name: {{ unit }}
    - why: config.yaml, a drop-in or a unit file changed
    - watch:
{%-   for trigger in config_triggers %}
      - {{ trigger | yaml(false) }}
{%-   endfor %}
{%-   if package_triggers %}
{%-     do markers.append({"crane": "crane-service-" ~ unit ~ "-restart-marked-package"}) %}

crane-service-{{ unit }}-restart-marked-package:
  crane.restart_marked:
    - name: {{ unit }}
    - why: its package changed
    - pending: false
    - watch:
{%-     for trigger in package_triggers %}
      - {{ trigger | yaml(false) }}
{%-     endfor %}
{%-   endif %}
{%-   if unit == "cranectld" and crane.restart == "on_change" %}

crane-service-cranectld-drains-saved:
  crane.drains_saved:
    - name: cranectld
    - require:
      - sls: {{ tplroot }}.validate
    - onchanges:
{%-     for marker in markers %}
      - {{ marker | yaml(false) }}
{%-     endfor %}
{%-   endif %}

{%-   if unit == "cranectld" and ha %}

{#- crane:ha: keepalived starts cranectld on the master; never started here on the backup.
    The restart markers above say when the master's cranectld must restart. #}
crane-service-cranectld-service-running:
  crane_ha.cranectld_role:
    - name: cranectld
    - vip: {{ ha.vip_address | json }}
    - on_master: {{ (crane.ha.script_dir ~ "/crane-on-master.sh") | json }}
    - alive_file: {{ ha.alive_file | json }}
    - restart: {{ crane.restart == "on_change" }}
    - require:
      - service: crane-ha-keepalived-service-running
{%-     for trigger in config_triggers + package_triggers + markers %}
      - {{ trigger | yaml(false) }}
{%-     endfor %}
{%-     if crane.restart == "on_change" %}
      - crane: crane-service-cranectld-drains-saved
{%-     endif %}

crane-service-cranectld-crane-daemon-healthy:
  crane_ha.cranectld_answering:
    - name: cranectld
    - timeout: {{ crane.ready_timeout }}
    - require:
      - crane_ha: crane-service-cranectld-service-running
{%-   else %}

crane-service-{{ unit }}-service-running:
  service.running:
    - name: {{ unit }}
    - enable: true
    - require:
{%-   for trigger in config_triggers + package_triggers + markers %}
      - {{ trigger | yaml(false) }}
{%-   endfor %}
{%-   if unit == "craned" and "cranectld" in crane.services %}
      - {{ ctld_healthy_mod }}: crane-service-cranectld-crane-daemon-healthy
{%-   endif %}
{%-   if crane.restart == "on_change" %}
{%-     if unit == "cranectld" %}
      - crane: crane-service-cranectld-drains-saved
{%-     endif %}
    - watch:
{%-     for marker in markers %}
      - {{ marker | yaml(false) }}
{%-     endfor %}
{%-   else %}

crane-service-{{ unit }}-restart-due:
  test.show_notification:
    - text: "{{ unit }}: its package or config changed; restart it when convenient (crane:restart is {{ crane.restart }}): `salt-run crane.restart`"
    - onchanges:
{%-     for marker in markers %}
      - {{ marker | yaml(false) }}
{%-     endfor %}
{%-   endif %}

crane-service-{{ unit }}-crane-daemon-healthy:
  crane.daemon_healthy:
    - name: {{ unit }}
    - log_file: {{ crane.base_dir ~ crane.units[unit].log }}
    - settle: {{ crane.settle }}
{%-   if unit == "cranectld" %}
    - ready_timeout: {{ crane.ready_timeout }}
{%-   endif %}
    - require:
      - service: crane-service-{{ unit }}-service-running
{%-   endif %}
{%-   if unit == "cranectld" %}

crane-service-cranectld-drains-restored:
  crane.drains_restored:
    - name: cranectld
    - require:
      - {{ ctld_healthy_mod }}: crane-service-cranectld-crane-daemon-healthy
{%-   endif %}
{%- endfor %}
