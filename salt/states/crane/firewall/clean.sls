{#- Close what the firewall step opened (the formula's own rules, whatever the pillar says
    now) and nothing an admin opened. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

crane-firewall-closed:
  crane_firewall.closed:
    - name: crane-formula firewall rules
    - backend: {{ crane.firewall_backend }}
