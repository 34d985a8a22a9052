{#- Step 5: the daemons of this minion's roles, enabled and running, cranectld before craned.
    crane:restart on_change restarts a daemon when its package, config or drop-in changed;
    never only says a restart is due. A daemon that exits after start fails here with the
    last lines of its journal and log, i.e. CraneSched's own reason. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set method = crane.install.method %}

include:
  - {{ tplroot }}.package
  - {{ tplroot }}.config

{%- for unit in crane.services %}
{%-   set triggers = [{"file": "crane-config-file-config-file-managed"},
                      {"file": "crane-config-dropin-" ~ unit ~ "-file-managed"}] %}
{%-   if unit == "cranectld" %}
{%-     do triggers.append({"file": "crane-config-file-database-file-managed"}) %}
{%-   endif %}
{%-   if method == "binaries" %}
{%-     do triggers.append({"file": "crane-package-unit-" ~ unit ~ "-file-managed"}) %}
{%-   elif crane.packages %}
{%-     do triggers.append({"pkg": "crane-package-install-pkg-installed"}) %}
{%-   endif %}

crane-service-{{ unit }}-service-running:
  service.running:
    - name: {{ unit }}
    - enable: true
    - require:
{%-   for trigger in triggers %}
      - {{ trigger | yaml(false) }}
{%-   endfor %}
{%-   if unit == "craned" and "cranectld" in crane.services %}
      - crane: crane-service-cranectld-crane-daemon-healthy
{%-   endif %}
{%-   if crane.restart == "on_change" %}
    - watch:
{%-     for trigger in triggers %}
      - {{ trigger | yaml(false) }}
{%-     endfor %}
{%-   else %}

crane-service-{{ unit }}-restart-due:
  test.show_notification:
    - text: "{{ unit }}: its package or config changed; restart it when convenient (crane:restart is {{ crane.restart }})"
    - onchanges:
{%-     for trigger in triggers %}
      - {{ trigger | yaml(false) }}
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
{%- endfor %}
