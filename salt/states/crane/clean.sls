{#- `salt '*' state.apply crane.clean`: stop CraneSched's daemons and remove what the formula
    installed. CraneSched's data under CraneBaseDir is kept unless crane:clean:remove_data. #}
include:
  - .heal.clean
  - .pam.clean
  - .package.clean
  - .firewall.clean
  - .gres.clean
  - .cgroup.clean
  - .names.clean
  - .time.clean
  - .mongodb.clean
  - .tls.clean
  - .plugin.clean
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}
{%- if crane.ha_facts and "control" in crane.roles %}
  - .ha.clean
{%- endif %}
{%- if crane.remove_data_refusal %}

{#- First, and the run stops here: nothing is cleaned while CraneBaseDir is unsafe to remove. #}
{#- The message is the name: test=True replaces a failing test state's comment. #}
crane-clean-data-refused:
  test.fail_without_changes:
    - name: {{ crane.remove_data_refusal | json }}
    - comment: {{ crane.remove_data_refusal | json }}
    - order: 1
    - failhard: true
{%- endif %}
