{#- Step 11: open this minion's CraneSched ports (10010 craned, 10011/10013 cranectld, 10012
    cfored, or the configured ones) where firewalld or ufw is active, from anywhere or only
    from crane:firewall_sources; the formula's own rules only (crane_firewall states). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate
{%- if crane.firewall and crane.ports %}

crane-firewall-opened:
  crane_firewall.opened:
    - name: CraneSched ports {{ crane.ports | join(", ") }}
    - backend: {{ crane.firewall_backend }}
    - ports: {{ crane.ports | json }}
    - sources: {{ crane.firewall_sources | json }}
    - zone: {{ crane.firewall_zone | json }}
    - require:
      - crane: crane-validate-config
{%- else %}

crane-firewall-inactive:
  test.succeed_without_changes:
    - name: >-
        {{ "crane:firewall is off" if not crane.firewall else "no CraneSched port on this node" }}:
        the firewall is left as it is
    - require:
      - crane: crane-validate-config
{%- endif %}
