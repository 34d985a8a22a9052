{#- Close the ports the firewall step opened, where that firewall is active. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- for port in crane.ports %}
{%-   if crane.firewall_backend == "firewalld" %}

crane-firewall-clean-{{ port }}-cmd-run:
  cmd.run:
    - name: firewall-cmd --permanent --zone=public --remove-port={{ port }}/tcp && firewall-cmd --reload
    - onlyif: firewall-cmd --state && firewall-cmd --permanent --zone=public --query-port={{ port }}/tcp
{%-   else %}

crane-firewall-clean-{{ port }}-cmd-run:
  cmd.run:
    - name: ufw delete allow {{ port }}/tcp
    - onlyif: ufw status | grep -qE '^{{ port }}/tcp +ALLOW'
{%-   endif %}
{%- endfor %}
