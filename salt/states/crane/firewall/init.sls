{#- Step 6: open this minion's CraneSched ports (10010 craned, 10011/10013 cranectld, 10012
    cfored, or the configured ones) when firewalld or ufw is active; otherwise say so. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set backend = crane.firewall_backend %}
{%- set has_ufw = backend == "ufw" and salt["cmd.which"]("ufw") %}
{%- set active = crane.firewall and crane.ports and (
      (backend == "firewalld" and salt["cmd.which"]("firewall-cmd") and salt["service.status"]("firewalld"))
      or (has_ufw and "Status: active" in salt["cmd.run"]("ufw status", python_shell=False))) %}

include:
  - {{ tplroot }}.validate
{%- if active and backend == "firewalld" %}

crane-firewall-firewalld-present:
  firewalld.present:
    - name: public
    - ports:
{%-   for port in crane.ports %}
      - {{ port }}/tcp
{%-   endfor %}
    - prune_ports: false
    - require:
      - crane: crane-validate-config
{%- elif active %}
{%-   for port in crane.ports %}

crane-firewall-ufw-{{ port }}-cmd-run:
  cmd.run:
    - name: ufw allow {{ port }}/tcp
    - unless: ufw status | grep -qE '^{{ port }}/tcp +ALLOW'
    - require:
      - crane: crane-validate-config
{%-   endfor %}
{%- else %}

crane-firewall-inactive:
  test.succeed_without_changes:
    - name: >-
        {{ "crane:firewall is off" if not crane.firewall else "no active " ~ backend ~ " firewall" }}:
        ports {{ crane.ports | join("/tcp, ") }}/tcp left as they are
    - require:
      - crane: crane-validate-config
{%- endif %}
